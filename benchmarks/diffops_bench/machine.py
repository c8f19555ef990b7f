"""Where the numbers came from: machine, versions, thread settings, diffops source."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import diffops

from .config import FRAMEWORK, REPO_ROOT, Config

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that size the BLAS and OpenMP thread pools."""

_DISTRIBUTIONS = (
    "diffops",
    "numpy",
    "jax",
    "jaxlib",
    "torch",
    "autograd",
    "symnum",
    "sympy",
    "rich",
    "matplotlib",
)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def loadavg() -> str | None:
    """The 1, 5 and 15 minute load averages, e.g. ``"0.87 0.80 0.92"``."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return None


def machine_info() -> dict[str, Any]:
    """Platform, CPUs, load, Python and package versions, thread settings, source."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        affinity = None
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "loadavg_start": loadavg(),
        "thread_env": {
            v: os.environ.get(v) for v in (*THREAD_VARS, "XLA_FLAGS") if v in os.environ
        },
        "versions": {d: _version(d) for d in _DISTRIBUTIONS},
        "diffops_version": diffops.__version__,
        "diffops_source": source_info(),
    }


def _git(*args: str) -> str | None:
    """Output of ``git -C <repository root> <args>``, or ``None`` if git fails."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:  # git not installed
        return None
    return proc.stdout if proc.returncode == 0 else None


def source_info() -> dict[str, Any]:
    """Which diffops code was measured: a hash of the imported package's files and,
    if it is this repository's ``src/diffops``, the repository's git state."""
    package = Path(diffops.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.glob("**/*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    info: dict[str, Any] = {"path": str(package), "sha256": digest.hexdigest()}
    if not package.is_relative_to(REPO_ROOT):
        info["note"] = f"diffops imported from outside this repository ({REPO_ROOT})"
        return info
    head = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--", str(package.relative_to(REPO_ROOT)))
    if head is not None and status is not None:
        info["git_commit"] = head.strip()
        # A file staged as deleted and present again untracked is listed twice.
        modified = [line[3:] for line in status.splitlines() if line.strip()]
        info["git_modified_files"] = list(dict.fromkeys(modified))
    return info


def framework_info(cfg: Config) -> dict[str, Any]:
    """torch's thread count (set to ``--threads``) and JAX's devices and x64 flag."""
    info: dict[str, Any] = {}
    backends = cfg.backends
    if "torch" in backends:
        import torch

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        info["torch_num_threads"] = torch.get_num_threads()
    if any(FRAMEWORK.get(b) == "jax" for b in backends):
        import jax

        info["jax_devices"] = [str(d) for d in jax.devices()]
        config: Any = jax.config
        info["jax_enable_x64_global"] = bool(config.jax_enable_x64)
    return info
