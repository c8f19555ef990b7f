"""Mici 0.4.1's own interface tests, with every ``mici.autodiff`` name from diffops.

``tests/test_interface.py`` is read from Mici's sdist at test time (downloaded once into
the pytest cache with ``pip download``; it is Mici's file and is not in this
repository) and run unchanged by pytest in a subprocess, with the plugin in
``_mici_interface_plugin.py``: diffops stands in for ``mici.autodiff`` in
``sys.modules``, and the ``backend`` parametrisation is replaced by one of ours.

Serially, every case passes on every backend. In parallel (``n_worker = n_chain``,
Mici's default start method: ``fork`` on Linux) every case passes on autograd and
torch. On jax and jax_nojit a worker pool started in a process where JAX has not
computed passes too, but Mici itself evaluates the Hamiltonian of the first initial
state in the parent before starting its pool (to size its trace arrays), so with
Mici's default trace functions every pool starts after JAX computed: those cases fail
fast with ``ForkedProcessError`` naming the ``spawn`` fix, never with a pickling
error or a hang. ``test_mici_chains.py`` shows the ``spawn`` fix, and a ``fork`` pool
that JAX did not compute before, working.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from _backends import SELECTED_BACKENDS, in_ci, require_backend

MICI_VERSION = "0.4.1"
SDIST = f"mici-{MICI_VERSION}.tar.gz"
SDIST_SHA256 = "6bb568c2239c3cac4415955e5155c1ea1db4cf1310f14c29d098323f94a1aadd"
TESTS = Path(__file__).resolve().parent
N_CASES = 48
"""Cases per backend in Mici's file: 24 of sample_hmc_chains, 24 of the constrained."""
TIMEOUT = 300
"""Seconds for one backend's run (about 30 s here); a hang fails instead of blocking."""
FAST = 60
"""Seconds within which a case that cannot compute must have failed."""


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: Mici's interface tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def mici_interface(request, tmp_path_factory) -> Path:
    """Mici's tests/test_interface.py, extracted from its sdist into a temporary dir."""
    try:
        installed = importlib.metadata.version("mici")
    except importlib.metadata.PackageNotFoundError:
        _unavailable("mici is not installed (a dev dependency)")
    if installed != MICI_VERSION:
        _unavailable(f"mici {installed} is installed, not {MICI_VERSION}")
    cache = getattr(request.config, "cache", None)
    folder = (
        cache.mkdir("mici-sdist")
        if cache is not None
        else tmp_path_factory.mktemp("mici-sdist")
    )
    sdist = Path(folder) / SDIST
    if not sdist.exists():
        # Downloaded to a folder of this process's own, then moved into place in one
        # step: another test process may be looking for the same file.
        download = Path(tempfile.mkdtemp(dir=folder))
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"mici=={MICI_VERSION}",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--quiet",
            "-d",
            str(download),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0 or not (download / SDIST).exists():
            _unavailable(f"could not download Mici's sdist: {result.stderr[-1000:]}")
        os.replace(download / SDIST, sdist)
        shutil.rmtree(download, ignore_errors=True)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        sdist.unlink()
        pytest.fail(f"{SDIST} has sha256 {digest}, expected {SDIST_SHA256}")
    target = tmp_path_factory.mktemp("mici-tests")
    with tarfile.open(sdist) as archive:
        member = archive.getmember(f"mici-{MICI_VERSION}/tests/test_interface.py")
        data = archive.extractfile(member).read()
    path = target / "test_interface.py"
    path.write_bytes(data)
    return path


def run_mici_interface(path: Path, backend: str, *, parallel: bool) -> list[dict]:
    """Run Mici's file with one backend in a fresh pytest process; its results."""
    report = path.parent / f"report-{backend}-{int(parallel)}.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "DIFFOPS_MICI_BACKENDS": backend,
        "DIFFOPS_MICI_PARALLEL": "1" if parallel else "0",
        "DIFFOPS_MICI_REPORT": str(report),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(path),
        "-p",
        "_mici_interface_plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "--rootdir",
        str(path.parent),
        "-c",
        os.devnull,
        "-W",
        "ignore::DeprecationWarning",
    ]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=path.parent,
            env=env,
        )
    except subprocess.TimeoutExpired as err:
        # The hang that CPython's Pool.terminate() could cause on Mici's failure
        # path is settled in the plugin (python/cpython#96995): a timeout is a hang.
        pytest.fail(_hang_message(err, report, backend, parallel))
    if not report.exists():
        pytest.fail(f"Mici's tests did not run:\n{result.stdout[-3000:]}")
    results = json.loads(report.read_text())
    print(f"{backend}, {'parallel' if parallel else 'serial'}: {_counts(results)}")
    return results


def _hang_message(
    err: subprocess.TimeoutExpired, report: Path, backend: str, parallel: bool
) -> str:
    running = Path(f"{report}.running")
    case = running.read_text() if running.exists() else "(none started)"
    output = err.stdout.decode() if isinstance(err.stdout, bytes) else err.stdout
    return (
        f"Mici's tests with {backend} (parallel={parallel}) hung: no result after "
        f"{TIMEOUT} s, in case {case}. Output: {(output or '')[-2000:]}"
    )


def _counts(results: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    return counts


def _failures(results: list[dict]) -> str:
    return "\n".join(
        f"{r['nodeid']}: {r['errors'][:3]}" for r in results if r["outcome"] != "passed"
    )


def _backends(*names: str) -> list[str]:
    return [name for name in names if name in SELECTED_BACKENDS]


def test_serial_with_micis_own_derivatives(mici_interface):
    # backend=None: Mici's hand-written derivatives, through diffops' autodiff_fallback
    # and wrap_function; Mici's own file runs these cases with n_worker = n_chain.
    results = run_mici_interface(mici_interface, "none", parallel=False)
    assert len(results) == N_CASES
    assert all(r["backend"] is None for r in results)
    assert all(r["outcome"] == "passed" for r in results), _failures(results)


@pytest.mark.parametrize(
    "backend", _backends("jax", "jax_nojit", "jax_codegen", "autograd", "torch")
)
def test_serial(mici_interface, backend):
    require_backend(backend)
    results = run_mici_interface(mici_interface, backend, parallel=False)
    assert len(results) == N_CASES
    assert {r["backend"] for r in results} == {backend}
    assert all(r["outcome"] == "passed" for r in results), _failures(results)
    assert not any(r["pools"] for r in results)  # serial: no worker pool


@pytest.mark.parametrize("backend", _backends("autograd", "torch"))
def test_parallel(mici_interface, backend):
    require_backend(backend)
    results = run_mici_interface(mici_interface, backend, parallel=True)
    assert len(results) == N_CASES
    assert all(r["outcome"] == "passed" for r in results), _failures(results)
    # Every case with two chains ran them on pools of two forked workers (one pool
    # per sampling stage: warm-up, main).
    pooled = [r for r in results if r["n_chain"] == 2]
    assert len(pooled) == N_CASES // 2
    assert all(r["pools"] for r in pooled)
    assert not any(r["pools"] for r in results if r["n_chain"] == 1)


@pytest.mark.parametrize("backend", _backends("jax", "jax_nojit"))
def test_parallel_jax_fails_fast_only_after_jax_computed(mici_interface, backend):
    require_backend(backend)
    results = run_mici_interface(mici_interface, backend, parallel=True)
    assert len(results) == N_CASES
    for r in results:
        if not any(r["pools"]):
            # One chain (no pool), or a pool started before JAX computed here.
            assert r["outcome"] == "passed", _failures([r])
            continue
        assert r["outcome"] == "failed", r["errors"]
        assert any(e.startswith("ForkedProcessError") for e in r["errors"]), r["errors"]
        assert any("'spawn'" in e for e in r["errors"]), r["errors"]
        assert not any("pickl" in e.lower() for e in r["errors"]), r["errors"]
        assert r["seconds"] < FAST, r["seconds"]
    # Mici evaluates the Hamiltonian in the parent before every pool: with two
    # chains, each case's pool starts after JAX computed.
    pooled = [r for r in results if r["n_chain"] == 2]
    assert len(pooled) == N_CASES // 2
    assert all(r["pools"][0] for r in pooled)
