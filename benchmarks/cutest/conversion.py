"""What diffops' SciPy result costs per call, part by part, against asdex's call.

diffops' sparse call returns NumPy value and gradient and a SciPy CSR array that owns
its arrays (the non-zeros copied out of JAX's read-only buffer, index arrays copied
from the plan's, so that SciPy's in-place methods work and cannot change the next
call's pattern); asdex's returns JAX arrays. In one process, for each matrix, this
times warm calls of: asdex's jitted ``value_and_hessian`` / ``value_and_jacobian``
(blocked until ready); diffops with ``as_numpy=False`` (blocked); diffops as shipped;
and diffops with parts of its result left out (:func:`.adapter.result_parts`): the
index copies, the value copy, both, and the CSR array itself. Batches of each in turn,
``--rounds`` times; it prints the fastest batch of each (µs per call).

Run it pinned to one core (on this 2-core machine JAX's worker thread on the other
core moves a call by 2-4x from run to run), in asdex's environment::

    PYTHONPATH=src taskset -c 0 /work/venv-asdex/bin/python -m \\
        benchmarks.cutest.conversion ARWHEAD:hessian,LISWET1:jacobian [--rounds 9]
"""

from __future__ import annotations

import argparse
import contextlib
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from . import adapter, measure, problems, versus

VARIANTS = {
    "diffops": (True, True, True),
    "no index copies": (False, True, True),
    "no value copy": (True, False, True),
    "no copies": (False, False, True),
    "no CSR array": (False, False, False),
}
"""diffops' variants: (copy index arrays, copy values, make the CSR array)."""


def _per_call(call: Callable[[], Any], calls: int, parts: Any = None) -> float:
    """µs per call over a batch (with ``parts``: inside ``result_parts(*parts)``)."""
    with adapter.result_parts(*parts) if parts else contextlib.nullcontext():
        start = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - start) / calls * 1e6


def compare(name: str, matrix: str, rounds: int) -> dict[str, float]:
    """Fastest µs per call of each variant for one matrix."""
    (spec,) = problems.discover(names=[name])
    built = problems.build(spec, matrix, n_points=1)
    diffops = versus.diffops_call(built)
    cases: dict[str, tuple[Callable[[], Any], Any]] = {
        "asdex": (versus.asdex_call(built), None),
        "diffops, JAX arrays out": (versus.diffops_call(built, as_numpy=False), None),
    }
    cases.update({k: (diffops, parts) for k, parts in VARIANTS.items()})
    for call, parts in cases.values():
        _per_call(call, 50, parts)
    calls = max(20, int(0.05e6 / max(1.0, _per_call(diffops, 20))))
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for key, (call, parts) in cases.items():
            best[key] = min(best[key], _per_call(call, calls, parts))
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table. Exit status 0."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cutest.conversion",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("matrices", help="NAME:hessian|jacobian|lagrangian, ...")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    problems.setup()
    keys = [k.split(":") for k in args.matrices.split(",") if k]
    problems.load_alone([name for name, _ in keys])
    measure.warm_up()
    for name, matrix in keys:
        best = compare(name, matrix, args.rounds)
        cells = "  ".join(f"{k} {v:.1f}" for k, v in best.items())
        print(f"{name}:{matrix}  {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
