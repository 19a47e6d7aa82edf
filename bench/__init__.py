"""noosphere benchmarks. Run ``make bench`` (all) or ``python -m bench NAME``; each writes its
section of docs/benchmarks.md."""
