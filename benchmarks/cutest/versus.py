"""diffops against asdex per call, interleaved batch by batch in two live workers.

Timing the two in separate runs, one after the other, mixes the difference between
them with the machine's drift over an hour (on this 2-core machine a jitted JAX call
varies twofold from one run to the next). Here one diffops worker (this interpreter)
and one asdex worker (``--asdex-python``, asdex needs Python >= 3.12) each import
sif2jax once and build every selected matrix; then, for each matrix, the driver asks
them in turn for a batch of warm calls, alternating which goes first, and never
runs the two at once. Per side and matrix it keeps the fastest batch and the median
batch (seconds per call).

What is timed is what :mod:`.measure` and :mod:`.asdex_side` time: diffops'
``hessian_grad_and_value`` / ``jacobian_and_value`` with ``sparsity="detect"``
(value, gradient, SciPy CSR matrix, all NumPy), and asdex's jitted
``value_and_hessian_from_coloring`` / ``value_and_jacobian_from_coloring`` (BCOO of
JAX arrays, blocked until ready), at the same point.

``--diffops-python`` runs the diffops worker with another interpreter: given the
asdex one, both sides run the same JAX (asdex needs jax >= 0.11, which needs Python
3.12; this repository's environment has Python 3.11 and jax 0.10), so what differs
is the libraries, not JAX.

``--asdex-scipy`` adds a third worker: asdex with its result converted to what
diffops returns (the value as NumPy, the matrix as a SciPy CSR array with its own
index arrays, made the way diffops makes its own), for users who need SciPy
matrices (trust-constr, IPOPT): the same work after the call on both sides.

``--diffops-jax`` adds diffops with ``as_numpy=False``: the value, gradient and the
non-zero values (CSR order) stay JAX arrays, as asdex's result does: the same kind
of result on both sides, with no conversion on either.

``--sync`` switches off JAX's asynchronous CPU dispatch in both workers
(``jax.config.update("jax_cpu_enable_async_dispatch", False)`` before the first
computation): each call then runs on the calling thread instead of being handed to
a worker thread and waited for. From NumPy every call waits for its result anyway;
on this machine the hand-over costs tens of µs per call.

From the repository root::

    python -m benchmarks.cutest.versus --asdex-python /work/venv-asdex/bin/python \\
        --problems SROSENBR,LISWET1 --rounds 9 [--sync] [--out DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from diffops.timing import time_batch

from . import clock, measure, problems

MIN_BATCH = 0.05
"""Seconds of calls per batch (at least one call)."""


# --- worker side -------------------------------------------------------------------


def diffops_call(built: problems.Matrix, as_numpy: bool = True) -> Callable[[], Any]:
    """diffops' call; with ``as_numpy=False`` JAX arrays out (the non-zeros in CSR
    order), blocked until ready, as asdex's side is."""
    import jax

    d = measure.operator(built)(built.func, "jax", sparsity="detect", as_numpy=as_numpy)
    x, args = built.points[0]
    if as_numpy:
        return lambda: d(x, *args)
    return lambda: jax.block_until_ready(d(x, *args))


def asdex_call(built: problems.Matrix) -> Callable[[], Any]:
    import asdex
    import jax

    x, args = built.points[0]
    if built.derivative == "hessian":
        pattern = asdex.hessian_sparsity(built.func, x, *args)
        coloring = asdex.hessian_coloring_from_sparsity(pattern)
        fn = jax.jit(asdex.value_and_hessian_from_coloring(built.func, coloring))
    else:
        pattern = asdex.jacobian_sparsity(built.func, x, *args)
        coloring = asdex.jacobian_coloring_from_sparsity(pattern)
        fn = jax.jit(asdex.value_and_jacobian_from_coloring(built.func, coloring))
    return lambda: jax.block_until_ready(fn(x, *args))


def _asdex_scipy_call(built: problems.Matrix) -> Callable[[], Any]:
    """asdex's call, its result converted as diffops converts its own.

    Value as a NumPy array; the BCOO's values put in CSR order (one NumPy gather,
    worked out once) and wrapped, with index arrays of its own, in a CSR array made
    by diffops' own :func:`diffops.sparse.plans.csr_like` (a shallow copy of a
    template, not SciPy's checking constructor): the same work after the call on
    both sides, so what differs is the libraries' programs and dispatch.
    """
    import numpy as np
    import scipy.sparse

    from diffops.sparse.plans import csr_like

    call = asdex_call(built)
    _, matrix = call()
    indices = np.asarray(matrix.indices)
    rows, cols = indices[:, 0], indices[:, 1]
    order = np.lexsort((cols, rows))
    in_order = bool(np.all(order == np.arange(order.size)))
    shape = tuple(matrix.shape)
    indptr = np.zeros(shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    template = scipy.sparse.csr_array(
        (np.ones(order.size), cols[order].astype(np.int32), indptr), shape=shape
    )

    def converted() -> tuple[Any, Any]:
        value, matrix = call()
        data = np.asarray(matrix.data)
        data = data.copy() if in_order else data[order]
        return np.asarray(value), csr_like(template, data)

    converted()
    return converted


def worker(side: str, sync: bool, stdin: IO[str], stdout: IO[str]) -> None:
    """Serve ``build`` / ``batch`` requests (one JSON object per line) until EOF."""
    import jax

    if sync:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    problems.setup()
    make = {
        "diffops": diffops_call,
        "diffops_jax": functools.partial(diffops_call, as_numpy=False),
        "asdex": asdex_call,
        "asdex_scipy": _asdex_scipy_call,
    }[side]
    calls: dict[str, Callable[[], Any]] = {}
    for line in stdin:
        request = json.loads(line)
        answer: dict[str, Any]
        try:
            if request["cmd"] == "matrices":
                spec = problems.discover(names=[request["problem"]])[0]
                answer = {"matrices": list(spec["matrices"])}
            elif request["cmd"] == "build":
                spec = problems.discover(names=[request["problem"]])[0]
                built = problems.build(spec, request["matrix"], n_points=1)
                call, first = clock.timed(functools.partial(make, built))
                _, seconds = clock.timed(call)
                calls[request["key"]] = call
                answer = {
                    "first_s": first + seconds,
                    "n": spec["n"],
                    "jax": jax.__version__,
                    "python": sys.version.split()[0],
                }
            else:
                loops = int(request["loops"])
                seconds = time_batch(calls[request["key"]], loops)
                answer = {"per_call": seconds / loops}
        except Exception as err:  # reported to the driver, the worker goes on
            answer = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


# --- driver side -------------------------------------------------------------------


class Worker:
    """A worker process and its request/answer pipe.

    ``side`` labels it; ``kind`` (default: the side) is the library it times, and
    ``tree`` the source tree diffops is imported from (default: this one).
    """

    def __init__(
        self,
        side: str,
        python: str,
        sync: bool,
        kind: str | None = None,
        tree: Path | None = None,
    ) -> None:
        self.side = side
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str((tree or root) / "src"), str(root)])
        kind = kind or side
        command = [python, "-m", "benchmarks.cutest.versus", "--worker", kind]
        self.process = subprocess.Popen(
            command + (["--sync"] if sync else []),
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **request: Any) -> dict[str, Any]:
        """Send one request, wait for its answer."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            msg = f"the {self.side} worker exited (code {self.process.wait()})"
            raise RuntimeError(msg)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        """End the worker."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def compare_case(
    workers: list[Worker], key: str, rounds: int
) -> dict[str, dict[str, float]]:
    """Interleaved batches of one built case on every worker.

    Returns:
        Side → ``{"best": s, "median": s}`` per call (``{"error": ...}`` on failure).
    """
    loops: dict[str, int] = {}
    for w in workers:
        probe = w.ask(cmd="batch", key=key, loops=1)
        if "error" in probe:
            return {w.side: probe for w in workers}
        loops[w.side] = max(1, math.ceil(MIN_BATCH / max(probe["per_call"], 1e-7)))
    samples: dict[str, list[float]] = {w.side: [] for w in workers}
    for k in range(rounds):
        first = k % len(workers)
        for w in workers[first:] + workers[:first]:
            answer = w.ask(cmd="batch", key=key, loops=loops[w.side])
            samples[w.side].append(answer["per_call"])
    return {
        side: {"best": min(values), "median": statistics.median(values)}
        for side, values in samples.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison (or, with ``--worker``, serve as one side)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cutest.versus", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--worker",
        choices=("diffops", "diffops_jax", "asdex", "asdex_scipy"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--asdex-python", default="/work/venv-asdex/bin/python")
    parser.add_argument(
        "--diffops-python",
        default=sys.executable,
        help="interpreter of the diffops worker (the asdex one: the same JAX on "
        "both sides; diffops is imported from src/)",
    )
    parser.add_argument(
        "--problems",
        default="ARWHEAD,BDQRTIC,BROYDN7D,BROYDN3DLS,SROSENBR,10FOLDTRLS,LISWET1",
        help="comma-separated sif2jax names (a size in brackets: ARWHEAD[n=1000])",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        metavar="TREE",
        help="also time diffops from another source tree (a git worktree of an "
        "earlier commit), interleaved with the other two: a before/after A/B",
    )
    parser.add_argument(
        "--asdex-scipy",
        action="store_true",
        help="also time asdex with its result converted to what diffops returns "
        "(NumPy value, SciPy CSR with its own index arrays), interleaved",
    )
    parser.add_argument(
        "--diffops-jax",
        action="store_true",
        help="also time diffops with as_numpy=False (JAX arrays out, as asdex's), "
        "interleaved",
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sync", action="store_true", help="JAX CPU dispatch off")
    parser.add_argument("--out", type=Path, default=None, help="write versus.json here")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.sync, sys.stdin, sys.stdout)
        return 0

    workers = [
        Worker("diffops", args.diffops_python, args.sync),
        Worker("asdex", args.asdex_python, args.sync),
    ]
    if args.diffops_jax:
        workers.append(
            Worker("diffops+jax", args.diffops_python, args.sync, "diffops_jax")
        )
    if args.asdex_scipy:
        workers.append(
            Worker("asdex+scipy", args.asdex_python, args.sync, "asdex_scipy")
        )
    if args.before is not None:
        workers.append(
            Worker("before", args.diffops_python, args.sync, "diffops", args.before)
        )
    results: list[dict[str, Any]] = []
    try:
        names = [n for n in args.problems.split(",") if n]
        for name in names:
            for matrix in _matrices(workers[0], name):
                key = f"{name}:{matrix}"
                built = {
                    w.side: w.ask(cmd="build", key=key, problem=name, matrix=matrix)
                    for w in workers
                }
                times = compare_case(workers, key, args.rounds)
                row = {"case": key, "build": built, "per_call": times}
                results.append(row)
                print(_line(row), file=sys.stderr, flush=True)
    finally:
        for w in workers:
            w.close()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        mode = "sync" if args.sync else "async"
        (args.out / f"versus_{mode}.json").write_text(json.dumps(results, indent=1))
    for other in [w.side for w in workers[1:]]:
        ratios = [
            r["per_call"]["diffops"]["best"] / r["per_call"][other]["best"]
            for r in results
            if "best" in r["per_call"].get("diffops", {})
            and "best" in r["per_call"].get(other, {})
        ]
        if ratios:
            print(
                f"diffops/{other} per call (fastest batches): median "
                f"{statistics.median(ratios):.2f}x, max {max(ratios):.2f}x over "
                f"{len(ratios)} matrices ({'sync' if args.sync else 'async'} "
                "dispatch)",
                file=sys.stderr,
            )
    return 0


def _matrices(worker: Worker, name: str) -> list[str]:
    """The matrices of problem ``name`` (asked of a worker: it has sif2jax)."""
    answer = worker.ask(cmd="matrices", problem=name)
    if "error" in answer:
        raise SystemExit(f"{name}: {answer['error']}")
    matrices: list[str] = answer["matrices"]
    return matrices


def _line(row: dict[str, Any]) -> str:
    parts = [f"{row['case']:24s}"]
    for side in row["per_call"]:
        t = row["per_call"].get(side, {})
        if "best" in t:
            best, median = t["best"] * 1e6, t["median"] * 1e6
            parts.append(f"{side} {best:9.1f} µs (median {median:9.1f})")
        else:
            parts.append(f"{side} {t.get('error', '?')}")
    d, a = row["per_call"].get("diffops", {}), row["per_call"].get("asdex", {})
    if "best" in d and "best" in a:
        parts.append(f"ratio {d['best'] / a['best']:.2f}x")
    return "  ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
