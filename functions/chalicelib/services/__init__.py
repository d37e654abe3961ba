"""Use cases of the control plane; routes stay thin and call these."""
