"""A banded constraint: the sparse Jacobian against the dense one.

The constraint of a discretised ODE ``dz/dt = -sin(z)`` (as met by constrained HMC on
time series and diffusion models), one equation per time step, each touching two
consecutive states: ``c_i(z) = z[i+1] - z[i] + h sin((z[i] + z[i+1]) / 2)``. Its
Jacobian is ``(n - 1) x n`` and bidiagonal. Run ``python examples/banded_constraint.py
[n]``: it checks the sparse Jacobian against the dense one and times both.
"""

from __future__ import annotations

import sys
import time

import jax.numpy as jnp
import numpy as np

import diffops

STEP = 0.01


def constraint(z):
    """One midpoint-rule equation per step: shape ``(n - 1,)``."""
    return z[1:] - z[:-1] + STEP * jnp.sin((z[:-1] + z[1:]) / 2)


def median_time(call, repeats=5):
    """Median seconds per call over a few repeats (after one warm-up call)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(n: int = 2000) -> None:
    """Build both Jacobians, check they agree, and time them."""
    z = np.random.default_rng(0).standard_normal(n)
    sparse = diffops.jacobian_and_value(constraint, sparsity="detect")
    dense = diffops.jacobian_and_value(constraint)
    jacobian, _value = sparse(z)
    expected, _ = dense(z)
    assert np.allclose(jacobian.toarray(), expected, rtol=1e-12, atol=1e-14)
    print(
        f"n = {n}: Jacobian {jacobian.shape}, {jacobian.nnz} non-zeros, "
        f"{sparse.coloring['colors']} products per call ({sparse.coloring['mode']})"
    )
    t_sparse = median_time(lambda: sparse(z))
    t_dense = median_time(lambda: dense(z))
    print(
        f"sparse {t_sparse * 1e6:.0f} µs, dense {t_dense * 1e6:.0f} µs per call: "
        f"{t_dense / t_sparse:.0f} times faster"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
