"""Benchmarks of canary.istio against the kubernetes.core collection, on the local lab.

``python -m bench`` (or ``make bench``) starts a lab of its own, runs every measurement, prints a
table and writes ``docs/performance.md`` and ``docs/performance.zh-CN.md``. Targets are reported
as met or missed; nothing here is a test and nothing fails on a missed target.

kubernetes.core comes from PyPI's ``ansible`` package, installed into a separate virtualenv in the
lab cache (``bench.env.ensure_bench_venv``); it is never a dependency of the collection.
"""
