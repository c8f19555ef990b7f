"""examples/mici_softabs.py: Mici's SoftAbs Riemannian-manifold HMC with diffops'
Hessian and matrix-Tressian product, run briefly in process and as a script."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _backends import require_backend

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "mici_softabs.py"


@pytest.fixture(scope="module")
def example():
    require_backend("jax")
    pytest.importorskip("mici")
    spec = importlib.util.spec_from_file_location("mici_softabs", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hamiltonian_gradient_matches_finite_differences(example):
    # The position gradient of the SoftAbs Hamiltonian uses the Hessian (for the
    # metric) and the MTP (for the metric's derivative): checked against central
    # differences of the Hamiltonian itself, so a wrong MTP or return order fails.
    import mici

    system = example.make_system(softabs_coeff=1.0)
    rng = np.random.default_rng(0)
    pos, mom = np.array([0.7, -0.4, 0.9]), rng.standard_normal(3)

    def hamiltonian(q):
        return system.h(mici.states.ChainState(pos=q, mom=mom, dir=1))

    state = mici.states.ChainState(pos=pos, mom=mom, dir=1)
    gradient = system.dh_dpos(state)
    step = 1e-5
    finite_differences = [
        (hamiltonian(pos + step * e) - hamiltonian(pos - step * e)) / (2 * step)
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(gradient, finite_differences, rtol=1e-6, atol=1e-8)
    assert gradient.dtype == np.float64


def test_softabs_sampler_runs_and_accepts(example):
    import jax

    x64 = jax.config.jax_enable_x64
    _final_states, traces, stats = example.sample(
        n_warm_up_iter=30, n_main_iter=30, n_chain=1, max_tree_depth=3, seed=2
    )
    result = example.summary(traces, stats)
    assert result["n_samples"] == 30
    assert result["dtype"] == np.float64
    assert result["all_finite"]
    # Step size adapted to a target acceptance statistic of 0.8: far below it
    # means the dynamics are wrong (e.g. a wrong metric derivative).
    assert 0.5 < result["mean_accept_stat"] <= 1.0, result
    assert result["divergent_fraction"] < 0.2, result
    assert jax.config.jax_enable_x64 == x64  # float64 without the global flag


def test_softabs_example_runs_as_a_script():
    require_backend("jax")
    pytest.importorskip("mici")
    args = ["--chains", "1", "--warm-up", "5", "--iterations", "5"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--max-tree-depth", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 chains, 5 samples, dtype float64" in result.stdout
    assert "mean acceptance statistic" in result.stdout
