"""Benchmarks for saliency-serving; run ``python -m tests.benchmarks`` (see ``__main__``).

Files are named ``bench_*.py`` so pytest never collects them: timings are reported, never
asserted.
"""
