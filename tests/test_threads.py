"""Derivative functions called from many threads give the single-threaded results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import _spawn_models
import diffops
from _backends import SELECTED_BACKENDS, require_backend

N_THREADS = 8
CALLS = 25


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize(
    "op", ["grad_and_value", "mtp_hessian_grad_and_value", "hvp_grad_and_value"]
)
def test_eight_threads_agree_with_one(backend, op):
    require_backend(backend)
    derivative = getattr(diffops, op)(_spawn_models.potential(backend), backend=backend)
    calls = 3 if backend == "jax_nojit" else CALLS  # op by op: slow, same code
    rng = np.random.default_rng(0)
    points = [rng.standard_normal(3) for _ in range(N_THREADS * calls)]
    expected = [_spawn_models.evaluate(derivative, x) for x in points]

    def work(start):
        return [
            _spawn_models.evaluate(derivative, points[i])
            for i in range(start, start + calls)
        ]

    with ThreadPoolExecutor(N_THREADS) as pool:
        chunks = list(pool.map(work, range(0, N_THREADS * calls, calls)))
    got = [result for chunk in chunks for result in chunk]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        for a, b in zip(g, e, strict=True):
            np.testing.assert_array_equal(a, b)


def test_unbuilt_derivative_is_built_once_under_concurrent_first_calls():
    require_backend("jax")
    derivative = diffops.grad_and_value(_spawn_models.potential("jax"))
    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(lambda _: derivative(np.ones(3))[1], range(N_THREADS)))
    assert len({float(r) for r in results}) == 1
