"""Every Python code block of the README runs, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from _backends import require_backend

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_readme_examples_run():
    for backend in ("jax", "torch", "symnum", "autograd"):
        require_backend(backend)
    namespace: dict[str, object] = {"__name__": "readme"}
    for number, block in enumerate(BLOCKS, start=1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as err:  # pragma: no cover - reported with the block
            pytest.fail(f"README python block {number} failed: {err!r}\n{block}")
