"""The benchmark harness behind ``make bench``; see docs/performance.md.

Not part of ``make test``: figures depend on the machine and on what else
runs on it. ``tests/observability/test_bench_smoke.py`` only checks that a
one-second run completes.
"""
