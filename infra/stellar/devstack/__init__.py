"""The local stack behind `make dev` and the end-to-end tests: every real part on one machine."""
