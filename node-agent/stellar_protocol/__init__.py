"""The StellarStack wire contract shared by the control plane and node agents."""
