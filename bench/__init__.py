"""Benchmarks for fan-networking: `python -m bench [dataplane|programming|hooks|disruption] [--quick]`.

Each benchmark prints a table of figures and compares its cases side by side in one run,
so ratios hold on a noisy shared machine. None of them asserts on speed. See README.md.
"""
