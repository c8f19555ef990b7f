"""Constrained CUTEst problems solved with diffops' derivatives: SciPy and IPOPT.

For each problem (sif2jax, known optimum), solve with
``scipy.optimize.minimize(method="trust-constr")`` (sparse Hessians, then HVPs) and
with IPOPT through ``ipopt_problem`` (sparse, then dense derivatives), twice each:
the first solve includes tracing, detection, coloring and compilation, the second
reuses them. Prints iterations, the objective's relative error against the known
optimum, both times and the evaluations per kind.

    python -m benchmarks.constrained                 # the test problems
    python -m benchmarks.constrained HS116 OPTCNTRL  # others
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import diffops

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _constrained_problems import PROBLEMS, circles, load

TRUST_CONSTR = {
    "gtol": 1e-10,
    "xtol": 1e-10,
    "initial_barrier_parameter": 1e-8,
    "initial_barrier_tolerance": 1e-8,
    "maxiter": 3000,
}


def scipy_solver(problem: Any, hessian: str) -> Any:
    from scipy.optimize import Bounds, minimize

    objective = diffops.scipy_objective(problem.objective, sparsity="detect")
    constraint = diffops.scipy_constraint(
        problem.constraints, problem.cl, problem.cu, hessian=hessian
    )
    second = (
        {"hess": objective.hess} if hessian == "matrix" else {"hessp": objective.hessp}
    )

    def solve() -> tuple[int, float, dict[str, int]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = minimize(
                objective.fun,
                problem.x0,
                jac=objective.jac,
                constraints=[constraint],
                bounds=Bounds(problem.lb, problem.ub),
                method="trust-constr",
                options=TRUST_CONSTR,
                **second,
            )
        counts = {**objective.evaluations, **constraint.fun.evaluations}
        return result.nit, float(result.fun), counts

    return solve


def ipopt_solver(problem: Any, sparsity: str | None) -> Any:
    ipopt = diffops.ipopt_problem(
        problem.objective,
        problem.x0,
        problem.constraints,
        lb=problem.lb,
        ub=problem.ub,
        cl=problem.cl,
        cu=problem.cu,
        sparsity=sparsity,
    )

    def solve() -> tuple[int, float, dict[str, int]]:
        hessians = ipopt.calls["hessian"]
        _, info = ipopt.solve(tol=1e-10, print_level=0, sb="yes")
        # One Hessian per iteration.
        return (
            ipopt.calls["hessian"] - hessians,
            float(info["obj_val"]),
            {**ipopt.evaluations},
        )

    return solve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problems", nargs="*", default=[*PROBLEMS, "circles1000"])
    names = parser.parse_args(argv).problems
    print(
        "| problem | n | m | solver | iterations | rel. error | first solve | "
        "second solve | evaluations (second solve) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        if name.startswith("circles"):
            problem = circles(int(name.removeprefix("circles")))
        else:
            problem = load(name)
        solvers = [
            ("trust-constr, sparse", lambda p: scipy_solver(p, "matrix")),
            ("trust-constr, HVPs", lambda p: scipy_solver(p, "hvp")),
            ("IPOPT, sparse", lambda p: ipopt_solver(p, "detect")),
            ("IPOPT, dense", lambda p: ipopt_solver(p, None)),
        ]
        for label, make in solvers:
            start = time.perf_counter()
            solve = make(problem)  # the first solve builds everything
            iterations, value, before = solve()
            first = time.perf_counter() - start
            start = time.perf_counter()
            iterations, value, after = solve()
            second = time.perf_counter() - start
            error = (value - problem.expected) / abs(problem.expected)
            spent = {k: after[k] - before.get(k, 0) for k in after}
            shown = ", ".join(f"{k} {v}" for k, v in spent.items() if v)
            print(
                f"| {name} | {problem.x0.size} | {problem.cl.size} | {label} | "
                f"{iterations} | {error:.1e} | {first:.2f} s | "
                f"{second:.3f} s | {shown} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
