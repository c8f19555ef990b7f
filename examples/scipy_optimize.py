"""SciPy's trust-region optimisers with diffops derivatives, one evaluation per point.

Run it with ``python examples/scipy_optimize.py``. It minimises the chained
Rosenbrock function ``Σ_i 100 (x[i+1] - x[i]²)² + (1 - x[i])²`` twice:

- in 5 dimensions with ``trust-exact`` (the Hessian, formed), ``Newton-CG`` and
  ``trust-krylov`` (Hessian-vector products), printing how many model evaluations
  each needed against the number of callbacks SciPy made;
- in 10,000 dimensions with ``trust-krylov``, whose Hessian would take 800 MB:
  ``hessp`` never forms it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from scipy.optimize import minimize

import diffops.scipy


def rosenbrock(x: Any) -> Any:
    """The chained Rosenbrock function of ``x`` of shape ``(n,)``; minimum at 1."""
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def optimise(method: str, x0: np.ndarray, backend: str = "jax") -> dict[str, Any]:
    """Minimise ``rosenbrock`` from ``x0`` and count the work done.

    Args:
        method: ``"trust-exact"`` (uses ``hess``), or ``"Newton-CG"``,
            ``"trust-krylov"``, ``"trust-ncg"`` (use ``hessp``).
        x0: Starting point of shape ``(n,)``.
        backend: diffops backend.

    Returns:
        The result's distance to the minimum, the callbacks SciPy made, the model
        evaluations by operator and the wall time.
    """
    objective = diffops.scipy.scipy_objective(rosenbrock, backend)
    second = {"hess": objective.hess} if method == "trust-exact" else {}
    second = second or {"hessp": objective.hessp}
    start = time.perf_counter()
    result = minimize(objective.fun, x0, jac=objective.jac, method=method, **second)
    return {
        "success": bool(result.success),
        "error": float(np.max(np.abs(result.x - 1))),
        "callbacks": sum(objective.calls.values()),
        "evaluations": objective.n_evaluations,
        "by_operator": {k: v for k, v in objective.evaluations.items() if v},
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    """Run both problems and print what they cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=10_000)
    parser.add_argument("--backend", default="jax")
    args = parser.parse_args()
    x0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])
    for method in ("trust-exact", "Newton-CG", "trust-krylov"):
        out = optimise(method, x0, args.backend)
        print(
            f"d=5 {method}: {out['callbacks']} callbacks, {out['evaluations']} model "
            f"evaluations {out['by_operator']}, |x - 1| = {out['error']:.1e}"
        )
        assert out["success"], out
    out = optimise("trust-krylov", np.full(args.dim, 0.5), args.backend)
    hessian_mb = args.dim**2 * 8 / 1e6
    print(
        f"d={args.dim} trust-krylov: {out['evaluations']} model evaluations "
        f"{out['by_operator']}, |x - 1| = {out['error']:.1e}, "
        f"{out['seconds']:.2f} s; the Hessian ({hessian_mb:,.0f} MB) was never formed"
    )
    assert out["success"], out
    assert "hessian_grad_and_value" not in out["by_operator"]


if __name__ == "__main__":
    main()
