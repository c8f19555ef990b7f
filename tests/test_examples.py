"""The examples in examples/ run as scripts (small sizes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _backends import require_backend

ROOT = Path(__file__).resolve().parent.parent


def test_banded_constraint_example():
    require_backend("jax")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "banded_constraint.py"), "200"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 products per call (forward)" in result.stdout
