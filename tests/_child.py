"""Running test code in a fresh Python interpreter (one helper for the test modules)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_python(
    code: str, *, timeout: float = 300, root: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter; it must exit with status 0.

    Args:
        code: The program (``python -c``).
        timeout: Seconds before the child counts as stuck (``TimeoutExpired``).
        root: Run there with it on ``PYTHONPATH`` (e.g. the repository root, for
            ``benchmarks``).
    """
    env = None if root is None else {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=root,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done
