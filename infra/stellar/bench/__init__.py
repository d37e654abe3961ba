"""Benchmarks behind `stellar bench <scenario>`; each module exposes ``run(argv) -> int``."""
