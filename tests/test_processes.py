"""Derivative functions in worker processes: the spawn recipe, and fork children."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

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
    "backend", [b for b in ("jax", "jax_nojit") if b in SELECTED_BACKENDS]
)
def test_jax_in_fork_children(backend):
    # A fresh process (this one has computed with JAX): a fork child computes on every
    # JAX path while the parent has only imported JAX, built, jit-wrapped and traced;
    # once the parent computed, every path raises ForkedProcessError instead of
    # hanging.
    require_backend(backend)
    script = Path(__file__).resolve().parent / "_fork_jax.py"
    result = subprocess.run(
        [sys.executable, str(script), backend],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["computed before"] is False
    assert set(report["fresh"]) == set(report["parent"])
    assert len(report["fresh"]) == 9
    for name, got in report["fresh"].items():
        assert not isinstance(got, str), (name, got)
        np.testing.assert_allclose(got, report["parent"][name], rtol=1e-15)
    assert len(report["computed"]) == 11
    for name, got in report["computed"].items():
        assert isinstance(got, str), (name, got)
        assert got.startswith("ForkedProcessError"), (name, got)
        assert "'spawn'" in got, (name, got)


# Large enough for PyTorch to run its element-wise kernels on its intra-op thread
# pool, which a fork child does not have.
N_LARGE = 400_000


@pytest.mark.skipif("torch" not in SELECTED_BACKENDS, reason="torch not selected")
def test_torch_computes_in_fork_children_after_the_parent_did():
    require_backend("torch")
    potential = _spawn_models.torch_potential
    large = np.linspace(0.1, 1.0, N_LARGE)
    objects = {
        "gradient": diffops.grad_and_value(potential, backend="torch"),
        "mtp": diffops.mtp_hessian_grad_and_value(potential, backend="torch"),
        "batched hvp": diffops.batched(
            diffops.hvp_grad_and_value(potential, backend="torch")
        ),
        "wrap_function": diffops.wrap_function(potential, "torch"),
    }
    points = {
        "gradient": large,
        "mtp": X,
        "batched hvp": np.stack([X, 2 * X]),
        "wrap_function": large,
    }
    expected = {
        name: _spawn_models.evaluate_object(obj, points[name])
        for name, obj in objects.items()
    }
    closure = objects["mtp"](X)[0]  # made in the parent, applied in the child
    expected["parent's closure"] = [closure(np.ones((3, 3)))]
    with multiprocessing.get_context("fork").Pool(1) as pool:
        jobs = {
            name: pool.apply_async(
                _spawn_models.evaluate_in_fork, (objects[name], points[name])
            )
            for name in objects
        }
        jobs["parent's closure"] = pool.apply_async(
            _spawn_models.apply_in_fork, (closure, np.ones((3, 3)))
        )
        threads = pool.apply_async(_spawn_models.torch_threads)
        # A hang fails here instead of blocking CI.
        results = {name: job.get(timeout=60) for name, job in jobs.items()}
        assert threads.get(timeout=60) == 1
    for name, got in results.items():
        assert not isinstance(got, str), (name, got)
        for g, e in zip(got, expected[name], strict=True):
            # One intra-op thread in the child: sums may round differently.
            np.testing.assert_allclose(g, e, rtol=1e-12, err_msg=name)
