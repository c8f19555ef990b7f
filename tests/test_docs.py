"""Every Python code block of the documentation runs, page by page.

The blocks of one page run in order in one namespace, as a reader would run them.
A block whose first line starts with ``# not run:`` is skipped; the rest of that line
says why (a GPU, a cluster, a forked process). Pages are ``docs/**/*.md``; the site
itself is built by ``mkdocs build --strict`` (``make docs``).
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import pytest

import diffops.registry
from _backends import in_ci, require_backend

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
# A fence opens at the start of a line with exactly "python" as its language (an
# optional title or other attributes may follow) and closes at the next "```" line.
FENCE = re.compile(r"^```python(?:[ \t][^\n]*)?\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = "# not run:"
MAX_NOT_RUN = 6
"""Blocks that may be skipped across all pages: keep them rare."""


OPTIONAL_MODULES = {
    "scipy": r"^(import|from) scipy\b|sparsity=",
    "dask": r"^(import|from) (diffops\.)?dask\b",
    "pymc": r"^(import|from) pymc\b",
    "mici": r"^(import|from) mici\b",
    "cyipopt": r"^(import|from) cyipopt\b|\.solve\(",
}
"""Packages some pages need beyond the frameworks (extras and dev dependencies), and
the code that shows a page needs them."""


def require_module(name: str) -> None:
    """Skip (outside CI) or fail (in CI) when a page needs a missing package."""
    if importlib.util.find_spec(name) is not None:
        return
    msg = f"the page needs {name}, which is not installed"
    if in_ci():
        pytest.fail(f"{msg} (CI=true: every page must run)")
    pytest.skip(msg)


def blocks(page: Path) -> list[str]:
    return FENCE.findall(page.read_text(encoding="utf-8"))


def page_id(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


def test_docs_have_examples():
    counts = {page_id(p): len(blocks(p)) for p in PAGES}
    assert sum(counts.values()) >= 40, counts


def test_no_python_block_is_missed():
    # Indented fences (inside lists or admonitions) and other spellings of the
    # language would not be run: the pages must not use them.
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for pattern in (r"^[ \t]+```\s*py", r"^```\s*(py|python3|pycon)\b"):
            found = re.search(pattern, text, re.M)
            assert found is None, f"{page_id(page)}: unrun code block {found!r}"


def test_code_lines_fit_the_page():
    # Code wider than the ruff line length scrolls sideways on the site.
    long = [
        (page_id(p), line)
        for p in PAGES
        for block in blocks(p)
        for line in block.splitlines()
        if len(line) > 88
    ]
    assert not long, long


def test_skipped_blocks_are_rare_and_explained():
    skipped = [
        (page_id(p), b.splitlines()[0])
        for p in PAGES
        for b in blocks(p)
        if b.startswith(NOT_RUN)
    ]
    assert len(skipped) <= MAX_NOT_RUN, skipped
    for page, first_line in skipped:
        reason = first_line.removeprefix(NOT_RUN).strip()
        assert len(reason) > 10, f"{page}: say why the block is not run"


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [page_id(p) for p in PAGES if f" {page_id(p)}\n" not in nav]
    assert not missing, f"pages missing from the nav of mkdocs.yml: {missing}"


def test_benchmark_numbers_are_quoted_from_the_results():
    # Every timing quoted on the backends page is one the benchmark run wrote.
    results = (ROOT / "benchmarks" / "results" / "results.md").read_text("utf-8")
    page = (DOCS / "backends.md").read_text(encoding="utf-8")
    quoted = re.findall(r"\| ([\d,]+(?:\.\d+)?) (?=\|)", page)
    assert len(quoted) >= 20, quoted
    missing = [q for q in quoted if f"| {q} |" not in results]
    assert not missing, f"numbers on docs/backends.md not in results.md: {missing}"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=page_id)
def test_page_examples_run(page: Path):
    code = blocks(page)
    for backend in ("jax", "torch", "symnum", "autograd"):
        require_backend(backend)
    for module, pattern in OPTIONAL_MODULES.items():
        if any(re.search(pattern, block, re.M) for block in code):
            require_module(module)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    registered = dict(diffops.registry._REGISTERED_BACKENDS)
    try:
        with warnings.catch_warnings():
            # Warnings raised at the page's own code (diffops warns at its caller)
            # fail the test: a page must not show code that warns.
            warnings.filterwarnings("error", module="docs_")
            for number, block in enumerate(code, start=1):
                if block.startswith(NOT_RUN):
                    continue
                where = f"{page_id(page)} python block {number}"
                try:
                    exec(compile(block, where, "exec"), namespace)
                except Exception as err:  # pragma: no cover - reported with the block
                    pytest.fail(f"{where} failed: {err!r}\n{block}")
    finally:
        # Pages that show how to register a backend leave the registry as it was.
        diffops.registry._REGISTERED_BACKENDS.clear()
        diffops.registry._REGISTERED_BACKENDS.update(registered)
