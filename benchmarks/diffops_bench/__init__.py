"""Side-by-side benchmarks: diffops against each framework's own best call and NumPy.

One run times, per case and operator, the diffops derivative function on every selected
backend, the best hand-written call of the framework itself for the same result
(including the conversion of its outputs to NumPy arrays) and, where closed forms exist,
hand-written NumPy derivatives. It reports medians per call, ratios, the performance
targets with pass/fail, and writes ``results.json`` (raw numbers and machine info),
``results.md`` and ``scaling.png`` to the output directory.

Run it from the repository root as ``python -m benchmarks.diffops_bench`` (``make
bench``); ``--quick`` is a smoke test for CI. Every framework, rich and matplotlib are
imported inside functions, when a case needs them.
"""
