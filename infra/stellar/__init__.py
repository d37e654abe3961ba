"""The `stellar` command line and the local development stack."""
