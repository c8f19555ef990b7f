"""MkDocs hook: publish files that live outside ``docs/`` with the site.

The benchmark plot is written by the benchmark harness into ``benchmarks/results/``;
publishing it from there (instead of a copy under ``docs/``) keeps one version of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]

PUBLISHED = {
    "assets/scaling.png": ROOT / "benchmarks" / "results" / "scaling.png",
    "assets/cutest.png": ROOT / "benchmarks" / "results" / "cutest.png",
}
"""Site path -> file in the repository."""


def on_files(files: Files, config: Any) -> Files:
    """Add the repository files of :data:`PUBLISHED` to the site."""
    for uri, path in PUBLISHED.items():
        if not path.is_file():
            msg = f"{path} is missing; it is published as {uri}."
            raise FileNotFoundError(msg)
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
