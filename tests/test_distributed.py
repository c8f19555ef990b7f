"""Beyond one process: Dask's map_batched on a local cluster, and Mici's parallel
chains (the example in examples/, run as a script)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import _spawn_models
import diffops
from _backends import require_backend

ROOT = Path(__file__).resolve().parent.parent


def test_map_batched_on_a_local_cluster_with_worker_processes():
    require_backend("jax")
    from dask.distributed import Client, LocalCluster

    derivative = diffops.grad_and_value(_spawn_models.jax_potential)
    xs = np.random.default_rng(0).standard_normal((10_000, 3))
    # Computed locally in the same chunks: XLA's vectorised code differs in the last
    # bit between batch sizes, but the same chunk gives the same bits anywhere.
    local = [
        diffops.batched(derivative)(xs[i : i + 2_500]) for i in range(0, 10_000, 2_500)
    ]
    expected = [np.concatenate([chunk[k] for chunk in local]) for k in range(2)]
    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        grads, values = diffops.dask.map_batched(
            derivative, xs, chunk_size=2_500, client=client
        )
    np.testing.assert_array_equal(grads, expected[0])
    np.testing.assert_array_equal(values, expected[1])


def test_map_batched_with_batched_arguments_on_the_default_scheduler():
    require_backend("jax")
    import jax.numpy as jnp

    derivative = diffops.grad_and_value(lambda x, a: jnp.sum(a * x**2))
    xs = np.random.default_rng(1).standard_normal((30, 2))
    scales = np.arange(30.0)[:, None] * np.ones(2)
    grads, _values = diffops.dask.map_batched(
        derivative, xs, scales, chunk_size=7, batched_args=[0]
    )
    np.testing.assert_allclose(grads, 2 * scales * xs, rtol=1e-12)


def test_map_batched_refuses_closures():
    require_backend("jax")
    derivative = diffops.vjp_and_value(_spawn_models.jax_potential)
    with pytest.raises(TypeError, match="closure"):
        diffops.dask.map_batched(derivative, np.ones((4, 3)))


def test_mici_parallel_chains_example():
    require_backend("jax")
    import mici  # noqa: F401 - a dev dependency, installed in CI

    script = ROOT / "examples" / "mici_torus_parallel.py"
    result = subprocess.run(
        [sys.executable, str(script), "--chains", "2", "--iterations", "30"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "largest constraint violation" in result.stdout
    assert "dtype float64" in result.stdout
