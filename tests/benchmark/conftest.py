"""tests/benchmark: tools/benchmark.py and the benchmark package: plans, workers, tables, refusals, and runs."""
