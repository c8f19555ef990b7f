"""Derivative functions in worker processes: the spawn recipe, and fork detection."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

import _spawn_models
import diffops
from _backends import SELECTED_BACKENDS, require_backend

X = np.array([0.3, -0.2, 0.5])


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("op", ["mtp_hessian_grad_and_value", "hvp_grad_and_value"])
def test_spawn_pool_results_are_bit_identical_to_the_parent(backend, op):
    require_backend(backend)
    derivative = getattr(diffops, op)(_spawn_models.potential(backend), backend=backend)
    expected = _spawn_models.evaluate(derivative, X)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        jobs = [pool.apply_async(_spawn_models.evaluate, (derivative, X)) for _ in "ab"]
        results = [job.get(timeout=180) for job in jobs]
    for got in results:
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)  # bit-identical


@pytest.mark.parametrize(
    "backend", [b for b in ("jax", "torch") if b in SELECTED_BACKENDS]
)
def test_fork_after_the_framework_started_is_a_clear_error_not_a_hang(backend):
    require_backend(backend)
    derivative = diffops.hessian_grad_and_value(
        _spawn_models.potential(backend), backend=backend
    )
    derivative(X)  # the framework is now initialised in this (parent) process
    with (
        pytest.warns((RuntimeWarning, DeprecationWarning))
        if backend == "jax"
        else _nothing(),
        multiprocessing.get_context("fork").Pool(1) as pool,
    ):
        result = pool.apply_async(_spawn_models.evaluate_in_fork, (derivative, X))
        outcome = result.get(timeout=60)  # a hang fails here instead of blocking CI
    assert isinstance(outcome, str)
    assert outcome.startswith("ForkedProcessError")
    assert "'spawn'" in outcome


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
