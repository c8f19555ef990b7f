"""First call and per call of a dense JAX Hessian with the unit vectors as a constant.

The measurement behind lowering ``diffops.backends.jax.CONSTANT_BASIS`` from 256 to
32: a compiled dense Hessian takes its unit vectors as a program constant when there
are at most that many, and XLA folds that constant through the function at compile
time. For a Gaussian random walk (``cumsum``) the folding costs seconds. Each size is
built four times, alternating the two limits, each on a fresh function object.

Run from the repository root: ``python -m benchmarks.basis_first_call``.
"""

from __future__ import annotations

import time

import numpy as np

import diffops
import diffops.backends.jax as jax_backend

SIZES = (64, 128, 200, 255)
LIMITS = (256, 32)


def walk(x):  # type: ignore[no-untyped-def]
    """A random walk's negative log density (its Hessian is dense)."""
    import jax.numpy as jnp

    return 0.5 * jnp.sum(jnp.diff(jnp.cumsum(x)) ** 2) + 0.5 * jnp.sum(
        jnp.cumsum(jnp.sin(x)) ** 2
    )


def main() -> None:
    """Print the first call (s) and the fastest warm call (µs) per size and limit."""
    saved = jax_backend.CONSTANT_BASIS
    try:
        for n in SIZES:
            x = np.random.default_rng(0).standard_normal(n)
            for limit in LIMITS * 2:
                jax_backend.CONSTANT_BASIS = limit
                start = time.perf_counter()
                derivative = diffops.hessian_grad_and_value(lambda y: walk(y))
                derivative(x)
                first = time.perf_counter() - start
                batches = []
                for _ in range(5):
                    start = time.perf_counter()
                    for _ in range(20):
                        derivative(x)
                    batches.append((time.perf_counter() - start) / 20)
                print(
                    f"n = {n:4d}, constant up to {limit:3d}: first {first:5.2f} s, "
                    f"call {min(batches) * 1e6:8.1f} µs",
                    flush=True,
                )
    finally:
        jax_backend.CONSTANT_BASIS = saved


if __name__ == "__main__":
    main()
