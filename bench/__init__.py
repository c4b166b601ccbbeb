"""Benchmark suite of the edge pipeline and the hub; run it with `python -m bench`.

BENCHMARKS.md at the top of the repository records its figures and methods.
"""
