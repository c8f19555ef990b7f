"""MkDocs hook: publish MathJax with the site, so formulas render without a network.

``pymdownx.arithmatex`` (generic mode) leaves each formula as TeX in an element of
class ``arithmatex``; ``docs/javascripts/mathjax.js`` configures MathJax and loads it
from ``assets/mathjax/tex-svg.js`` on pages that have a formula. That one file (SVG
output, fonts included) is taken from the ``django-static-mathjax`` package (MathJax
3 as plain files; the ``docs`` extra installs it), so the built site needs nothing
from the internet, also when opened from disk.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

SITE_PATH = "assets/mathjax/tex-svg.js"
"""Where MathJax is published in the site."""


def mathjax_file() -> Path:
    """MathJax's TeX-to-SVG bundle in the installed ``django-static-mathjax``.

    Returns:
        The path of ``tex-svg.js``.

    Raises:
        FileNotFoundError: If the package is not installed.
    """
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "static" / "mathjax" / "es5" / "tex-svg.js"
        if path.is_file():
            return path
    msg = (
        "MathJax is not installed: the docs need django-static-mathjax "
        "(pip install -e '.[docs]', or make setup)."
    )
    raise FileNotFoundError(msg)


def on_files(files: Files, config: Any) -> Files:
    """Add MathJax to the site's files."""
    path = mathjax_file()
    files.append(File.generated(config, SITE_PATH, abs_src_path=str(path)))
    return files
