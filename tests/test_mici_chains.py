"""Mici's chains on worker processes with diffops derivatives, on every backend.

``examples/mici_parallel_chains.py`` runs as a script: constrained HMC with two chains
on two worker processes. With ``spawn`` (the documented one-line fix for JAX) it works
on every backend; with ``fork`` it works on JAX too when Mici's parent process never
computed with JAX before starting its pools.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _backends import SELECTED_BACKENDS, require_backend

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "mici_parallel_chains.py"
SMALL = ["--chains", "2", "--workers", "2", "--iterations", "5"]
SMALL += ["--max-tree-depth", "3"]


def run_script(*args: str) -> subprocess.CompletedProcess:
    pytest.importorskip("mici")  # a dev dependency, installed in CI
    return subprocess.run(
        [sys.executable, str(SCRIPT), *SMALL, *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=SCRIPT.parent.parent,
    )


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_spawn_workers(backend):
    require_backend(backend)
    result = run_script("--backend", backend)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{backend}: 2 chains on 2 spawn workers, 10 samples" in result.stdout
    assert "dtype float64" in result.stdout


def test_fork_workers_of_a_parent_that_never_computed_with_jax():
    # (jax_nojit takes the same fork paths: tests/test_processes.py.)
    require_backend("jax")
    result = run_script(
        "--backend", "jax", "--start-method", "fork", "--parent-computes-nothing"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jax: 2 chains on 2 fork workers, 10 samples" in result.stdout


def test_fork_workers_after_jax_computed_fail_fast_naming_spawn():
    # Mici samples the initial momenta in the parent (a Jacobian): JAX has computed.
    require_backend("jax")
    result = run_script("--backend", "jax", "--start-method", "fork")
    assert result.returncode != 0
    assert "ForkedProcessError" in result.stderr
    assert "multiprocessing.set_start_method('spawn')" in result.stderr


def test_fork_workers_after_jax_computed_run_on_jax_codegen():
    # The case above, on jax_codegen: the workers run generated NumPy code.
    require_backend("jax_codegen")
    result = run_script(
        "--backend", "jax_codegen", "--start-method", "fork", "--warm-up"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jax_codegen: 2 chains on 2 fork workers, 10 samples" in result.stdout
