"""Griffe extension: docstrings written for ``help()`` and IDEs, read by mkdocstrings.

diffops' docstrings are Google style, with two habits of reStructuredText that
mkdocstrings' Markdown does not read; this extension rewrites them when the package
has been loaded, leaving the source untouched:

- **Sphinx roles** (``:class:`~diffops.errors.TracingError```,
  ``:meth:`Backend.run```) become optional mkdocs-autorefs links: a link where the
  object is documented on the site, plain code where it is not (private helpers,
  other packages). Names are resolved as Python would from the docstring's object:
  the enclosing class, then the module, then absolute ``diffops...`` paths. ``~``
  shows the last component only.
- **Doctest lines** (``>>> ...``) outside an ``Examples:`` section, which Markdown
  would read as nested block quotes, become ``pycon`` code blocks.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|obj|exc):`(~?)([A-Za-z_][\w.]*)`")
EXAMPLES = re.compile(r"^(\s*)Examples:\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def fence_doctests(text: str) -> str:
    """Wrap runs of ``>>>`` lines (and their output) in ``pycon`` code fences.

    Lines inside an ``Examples:`` section are left alone: griffe's Google parser
    renders those itself (``Example:``, singular, is an admonition to it: text).
    """
    lines = text.split("\n")
    out: list[str] = []
    section: int | None = None  # indentation of an Examples header we are under
    i = 0
    while i < len(lines):
        line = lines[i]
        header = EXAMPLES.match(line)
        if header:
            section = len(header.group(1))
        elif section is not None and line.strip() and _indent(line) <= section:
            section = None
        if section is None and line.lstrip().startswith(">>>"):
            pad = " " * _indent(line)
            out.append(f"{pad}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{pad}```")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _objects(obj: Any) -> Iterator[Any]:
    """``obj`` and every object defined under it (aliases are not followed)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _exists(pkg: Any, path: str) -> bool:
    if path == pkg.path:
        return True
    if not path.startswith(pkg.path + "."):
        return False
    try:
        pkg[path.removeprefix(pkg.path + ".")]
    except Exception:  # missing, or an alias that does not resolve
        return False
    return True


def _resolve(pkg: Any, obj: Any, name: str) -> str | None:
    """The full path that ``name`` means in the docstring of ``obj``, if any."""
    candidates = []
    scope = obj
    while scope is not None:
        candidates.append(f"{scope.path}.{name}")
        scope = scope.parent
    candidates.append(name)
    return next((path for path in candidates if _exists(pkg, path)), None)


class Docstrings(griffe.Extension):
    """Rewrite roles and doctest lines once the package is loaded."""

    def on_package(self, *, pkg: Any, **kwargs: Any) -> None:
        """Rewrite the docstrings of every object of the package."""
        for obj in _objects(pkg):
            docstring = obj.docstring
            if docstring is None:
                continue
            if ">>>" in docstring.value:
                docstring.value = fence_doctests(docstring.value)
            if ":`" not in docstring.value:
                continue

            def link(match: re.Match[str], obj: Any = obj) -> str:
                short, name = match.groups()
                text = html.escape(name.rsplit(".", 1)[-1] if short else name)
                path = _resolve(pkg, obj, name)
                if path is None:
                    return f"`{text}`"
                return (
                    f'<autoref identifier="{path}" optional><code>{text}</code>'
                    f"</autoref>"
                )

            docstring.value = ROLE.sub(link, docstring.value)
