"""What two threads give over one, per backend: the same total work, median of three.

Run from the repository root: ``OMP_NUM_THREADS=1 python benchmarks/threads.py``.
Two workloads: a d = 100 logistic-regression Hessian (SymNum: the 2-d banana, as
SymPy cannot differentiate the logistic model twice) and a d = 10⁶ gradient.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import diffops
from diffops.models import MODELS, logistic_model


def speed_up(derivative, x, calls: int) -> tuple[float, float]:
    """Seconds per call with one thread and with two (best of three)."""

    def work(n: int) -> None:
        for _ in range(n):
            derivative(x)

    derivative(x)
    one = two = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        work(calls)
        one = min(one, time.perf_counter() - start)
        start = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(work, [calls // 2, calls // 2]))
        two = min(two, time.perf_counter() - start)
    return one / calls, two / calls


def main() -> None:
    """Print one line per backend and workload."""
    import autograd.numpy as anp
    import jax.numpy as jnp
    import torch

    torch.set_num_threads(1)
    calls = {"jax": 400, "torch": 100, "autograd": 20, "symnum": 20000}
    for backend, n in calls.items():
        model = MODELS["banana"] if backend == "symnum" else logistic_model(100, 200)
        func, options = model.function(backend)
        derivative = diffops.hessian_grad_and_value(func, backend=backend, **options)
        x = model.sample(np.random.default_rng(0), model.shape)
        one, two = speed_up(derivative, x, n)
        print(
            f"{backend:9s} {model.name} Hessian: 1 thread {one * 1e6:9.1f} µs/call, "
            f"2 threads {two * 1e6:9.1f} µs/call: {one / two:.2f}x"
        )
    funcs = {
        "jax": lambda x: jnp.sum(jnp.log1p(jnp.exp(jnp.sin(x) * x))),
        "torch": lambda x: torch.sum(torch.log1p(torch.exp(torch.sin(x) * x))),
        "autograd": lambda x: anp.sum(anp.log1p(anp.exp(anp.sin(x) * x))),
    }
    x = np.random.default_rng(0).standard_normal(10**6)
    for backend, func in funcs.items():
        derivative = diffops.grad_and_value(func, backend=backend)
        one, two = speed_up(derivative, x, 20)
        print(
            f"{backend:9s} d = 10^6 gradient: 1 thread {one * 1e3:6.1f} ms/call, "
            f"2 threads {two * 1e3:6.1f} ms/call: {one / two:.2f}x"
        )


if __name__ == "__main__":
    main()
