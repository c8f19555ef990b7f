"""First calls of large JAX programs: XLA's default CPU emitters against its older ones.

diffops compiles a JAX program of more than
:data:`diffops.backends.jax_compile.LARGE_PROGRAM` equations with XLA's older CPU
emitters. This measures why: for each case, in a fresh process per measurement, the
first call (trace and compile) and the per-call time (fastest of five batches) with
the emitters forced either way, and the program's equation count. Run it pinned to
one core, with nothing else timing::

    taskset -c 0 .venv/bin/python -m benchmarks.large_programs

Cases: ``unrolled-K``, the dense ``hessian_grad_and_value`` of a sum of K terms
written as a Python loop (n = 3); ``cutest:NAME:MATRIX``, a sif2jax problem's sparse
matrix as the CUTEst harness builds it (``sparsity="detect"``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np

CASES = (
    "unrolled-25",
    "unrolled-50",
    "unrolled-100",
    "cutest:HS111:lagrangian",
    "cutest:ARGTRIG:lagrangian",
    "cutest:HS25:hessian",
)

EMITTERS = {"default": 10**12, "older": 0}
"""Emitters → the threshold that forces them."""


def _unrolled(terms: int) -> Any:
    import jax.numpy as jnp

    def f(x: Any) -> Any:
        total = 0.0
        for i in range(terms):
            scale = 1 + x[(i + 1) % 3] ** 2
            term = jnp.exp(-((x[i % 3] - 0.1 * i) ** 2) / scale)
            total = total + term * x[(i + 2) % 3]
        return total

    return f


def _build(case: str) -> tuple[Any, Any, tuple[Any, ...]]:
    """The derivative function and its point."""
    import diffops

    if case.startswith("unrolled-"):
        f = _unrolled(int(case.split("-")[1]))
        return diffops.hessian_grad_and_value(f, "jax"), np.array([0.1, 0.2, 0.3]), ()
    from benchmarks.cutest import measure, problems

    _, name, matrix = case.split(":")
    problems.setup()
    built = problems.build(problems.discover(names=[name])[0], matrix, n_points=1)
    x, args = built.points[0]
    derivative = measure.operator(built)(built.func, "jax", sparsity="detect")
    return derivative, x, tuple(args)


def measure_one(case: str, emitters: str) -> dict[str, Any]:
    """One case with the emitters forced, in this process."""
    from diffops.backends import jax_compile

    jax_compile.LARGE_PROGRAM = EMITTERS[emitters]
    counted: list[int] = []
    original = jax_compile.equation_count

    def count(jaxpr: Any) -> int:
        n = original(jaxpr)
        counted.append(n)
        return n

    jax_compile.equation_count = count
    derivative, x, args = _build(case)
    start = time.perf_counter()
    derivative(x, *args)
    first = time.perf_counter() - start
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            derivative(x, *args)
        batches.append((time.perf_counter() - start) / 20)
    return {
        "case": case,
        "emitters": emitters,
        "equations": max(counted, default=None),
        "first_s": first,
        "per_call_s": min(batches),
    }


def _fresh(case: str, emitters: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.large_programs", "--one", case]
    done = subprocess.run(
        [*command, "--emitters", emitters], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.1f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def main(argv: list[str] | None = None) -> None:
    """Measure every case both ways; print and write a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--emitters", choices=sorted(EMITTERS), default="default")
    parser.add_argument("--out", default="benchmarks/results/large_programs.md")
    options = parser.parse_args(argv)
    if options.one:
        print(json.dumps(measure_one(options.one, options.emitters)))
        return
    lines = [
        "| case (equations) | first call, default | first call, older "
        "| per call, default | per call, older |",
        "|---|---|---|---|---|",
    ]
    for case in options.cases.split(","):
        default, older = _fresh(case, "default"), _fresh(case, "older")
        lines.append(
            f"| {case} ({default['equations']:,}) | {_time(default['first_s'])} "
            f"| {_time(older['first_s'])} | {_time(default['per_call_s'])} "
            f"| {_time(older['per_call_s'])} |"
        )
        print(lines[-1], flush=True)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    header = (
        f"# Large JAX programs: XLA's default against its older CPU emitters\n\n"
        f"{stamp}, `taskset -c 0 python -m benchmarks.large_programs` "
        f"(a fresh process per measurement; per call: fastest of 5 batches of 20)\n\n"
    )
    with open(options.out, "w", encoding="utf-8") as out:
        out.write(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
