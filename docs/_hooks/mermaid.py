"""MkDocs hook: publish Mermaid with the site, so diagrams render without a network.

A fenced block of language ``mermaid`` becomes ``<pre class="mermaid">`` (the custom
fence of ``pymdownx.superfences`` in ``mkdocs.yml``), which mkdocs-material draws as
an SVG diagram in the theme's colours. The theme loads Mermaid from a CDN unless a
global ``mermaid`` is already defined, so this hook publishes Mermaid's standalone
bundle with the site (``assets/mermaid/mermaid.min.js``) and loads it, before the
theme's own script, on the pages that have a diagram (it is 2.7 MB).

The bundle comes from the npm registry's ``mermaid`` package: ``make docs`` fetches
it into the environment (``.venv/share/mermaid/mermaid.min.js``, beside the Python
packages that build the site), so the built site needs nothing from the internet,
also when opened from disk.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

SITE_PATH = "assets/mermaid/mermaid.min.js"
"""Where Mermaid is published in the site."""

DIAGRAM = '<pre class="mermaid">'
"""How a diagram block starts in a page's HTML."""


def mermaid_file() -> Path:
    """Mermaid's standalone bundle in the environment that runs MkDocs.

    Returns:
        The path of ``mermaid.min.js``.

    Raises:
        FileNotFoundError: If it has not been fetched.
    """
    path = Path(sys.prefix) / "share" / "mermaid" / "mermaid.min.js"
    if path.is_file():
        return path
    msg = (
        f"Mermaid is not installed ({path} is missing): the docs' diagrams need it. "
        "`make docs` fetches it with npm (npm pack mermaid)."
    )
    raise FileNotFoundError(msg)


def on_files(files: Files, config: Any) -> Files:
    """Add Mermaid to the site's files."""
    files.append(File.generated(config, SITE_PATH, abs_src_path=str(mermaid_file())))
    return files


def on_post_page(output: str, page: Any, config: Any) -> str:
    """Load Mermaid on a page with a diagram, before the theme's script runs."""
    if DIAGRAM not in output:
        return output
    source = get_relative_url(SITE_PATH, page.url)
    script = f'<script src="{source}" defer></script>\n'
    head_end = output.index("</head>")
    return output[:head_end] + script + output[head_end:]
