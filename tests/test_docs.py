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


WRAPPED_CODE_PAGES = ("index.md", "getting-started.md")
WRAPPED_CODE_LIMIT = 74
"""Characters of code that fit the home and getting-started pages at 1280 px without
sideways scrolling (docs/_checks/browser.py checks the built pages in Chromium)."""


@pytest.mark.parametrize("name", WRAPPED_CODE_PAGES)
def test_code_on_the_first_pages_needs_no_scrolling(name):
    page = DOCS / name
    fences = re.findall(r"^```[^\n]*\n(.*?)^```", page.read_text("utf-8"), re.S | re.M)
    long = [line for block in fences for line in block.splitlines()]
    long = [line for line in long if len(line) > WRAPPED_CODE_LIMIT]
    assert not long, long


# ---------------------------------------------------------------------------------
# Figures: every measured number comes from a named run, and the README and the
# docs quote the same figure for the same measurement.

RESULTS_MD = ROOT / "benchmarks" / "results" / "results.md"
RESULTS_JSON = ROOT / "benchmarks" / "results" / "results.json"

FIGURE = re.compile(
    r"(?<![\w.,])(\d[\d,]*(?:\.\d+)?)(?:\s?[–-]\s?(\d[\d,]*(?:\.\d+)?))?"
    r"\s?(µs|ms|s|min|×|times faster)(?!\w)"
)
"""A measured figure: a number or a range, with a unit of time or a ratio."""

NAMED_RUNS = {
    "threads": "benchmarks/threads.py",
    "banded constraint": "examples/banded_constraint.py",
    "CI": "bash .ci/run",
    "constrained": "python -m benchmarks.constrained",
    "codegen": "python -m benchmarks.codegen_backend",
    "cutest": "python -m benchmarks.cutest",
    "substitution": "python -m benchmarks.substitution",
    "large programs": "python -m benchmarks.large_programs",
}
"""Runs other than the benchmark harness whose figures the pages may quote: a
paragraph quoting one names its command (and date)."""

FIGURE_PAGES = [ROOT / "README.md"] + [
    p for p in sorted(DOCS.glob("*.md")) if p.name not in ("design.md", "decisions.md")
]
"""Pages whose figures are checked (design notes quote figures of their own runs)."""


def _prose_paragraphs(page: Path) -> list[tuple[str, str | None]]:
    """The page's paragraphs without code, each with the named run it quotes.

    Fenced blocks (transcripts of a command show what it printed in one run) and
    inline code (shapes such as ``1999 × 2000``) are left out; the run a paragraph
    names is read before, as commands are written as code. A run named in a section
    covers the paragraphs after it up to the next heading.
    """
    text = re.sub(r"^```.*?^```", "", page.read_text("utf-8"), flags=re.S | re.M)
    found = []
    section_run = None
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.lstrip().startswith("#"):
            section_run = None
        named = next((k for k, v in NAMED_RUNS.items() if v in paragraph), None)
        # A run named in a section covers the rest of it (its table, its reading).
        section_run = named or section_run
        run = section_run
        prose = re.sub(r"`[^`]*`", "", paragraph)
        if prose.strip():
            found.append((prose, run))
    return found


def _in_results(number: str, results: str) -> bool:
    """Whether ``number`` is written so in the results file (a whole number token:
    figures are quoted as the benchmark run wrote them, not rounded again)."""
    pattern = rf"(?<![\d.,]){re.escape(number)}(?![\d,]|\.\d)"
    return re.search(pattern, results) is not None


def _figures(page: Path) -> list[tuple[str, str, str | None]]:
    """``(figure, paragraph start, named run)`` for each figure on the page."""
    found = []
    for paragraph, run in _prose_paragraphs(page):
        for match in FIGURE.finditer(paragraph):
            found.append((match.group(0), paragraph.strip()[:60], run))
    return found


@pytest.mark.parametrize("page", FIGURE_PAGES, ids=lambda p: p.name)
def test_figures_come_from_a_named_run(page: Path):
    results = RESULTS_MD.read_text("utf-8")
    unsourced = []
    for figure, where, run in _figures(page):
        if run is not None:
            continue
        match = FIGURE.match(figure)
        assert match is not None
        numbers = [n for n in match.groups()[:2] if n]
        if not all(_in_results(n, results) for n in numbers):
            unsourced.append(f"{figure!r} in: {where}...")
    assert not unsourced, (
        f"{page.name}: figures neither in benchmarks/results/ nor in a paragraph "
        f"naming the run they come from ({', '.join(NAMED_RUNS.values())}): "
        f"{unsourced}"
    )


def test_docs_and_readme_quote_the_same_figures_of_each_named_run():
    readme = _figures(ROOT / "README.md")
    docs = [f for page in FIGURE_PAGES[1:] for f in _figures(page)]
    for run in NAMED_RUNS:
        in_readme = {figure for figure, _, r in readme if r == run}
        in_docs = {figure for figure, _, r in docs if r == run}
        if in_readme and in_docs:
            assert in_readme == in_docs, (run, in_readme ^ in_docs)


def test_the_batched_times_are_quoted_alike():
    # The parallel page once said "144 times faster" where the results said 629:
    # both pages now quote the batched and the looped times of that run.
    results = RESULTS_MD.read_text("utf-8")
    row = next(line for line in results.splitlines() if "B=1000, jax: loop" in line)
    looped, batched = re.findall(r"([\d,.]+) µs", row)[:2]
    for page in (ROOT / "README.md", DOCS / "parallel.md"):
        figures = {figure for figure, _, _ in _figures(page)}
        assert {f"{looped} µs", f"{batched} µs"} <= figures, (page.name, looped)
