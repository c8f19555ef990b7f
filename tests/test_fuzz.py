"""Differential fuzz test: random functions, every operator, every backend.

Hypothesis draws functions from the expression grammar of ``tests/fuzz/grammar.py``
(arithmetic, transcendental functions on safe domains, reductions, slicing and
indexing, concatenation, ``where``, matrix products, recurrences, sorting; input shapes
``()``, ``(1,)``, ``(3,)``, ``(2, 3)``; scalar and array values; extra arguments as
arrays and pytrees), written once and emitted for JAX, PyTorch, Autograd and SymNum.
Every operator of ``diffops.ALL_DIFF_OPS`` that applies runs on every selected
backend, and ``tests/fuzz/run.py`` compares them across backends, against finite
differences, and sparse against dense. A failure prints each disagreement and a
standalone repro snippet for the (shrunk) function.

One test per feature group (``-k core``, ``-k jax_variants``, ``-k data``).
Environment:

- ``DIFFOPS_FUZZ_EXAMPLES``: functions per group (default: the CI budget below);
- ``DIFFOPS_FUZZ_EXCLUDE``: comma-separated grammar features to leave out (names in
  ``fuzz.grammar.FEATURES``), e.g. to run what passes while a known defect is fixed;
- ``DIFFOPS_FUZZ_CHECKS``: comma-separated kinds of check (default all:
  ``cross,fd,sparse,error,harness``);
- ``DIFFOPS_FUZZ_IGNORE``: comma-separated ``kind:backend`` pairs whose disagreements
  are not failures (e.g. ``sparse:torch,error:symnum``), to run the rest while a known
  defect is being fixed.

To run what passes while known defects are fixed, exclude the constructs and ignore
the kinds the failure report names, e.g. ``DIFFOPS_FUZZ_EXCLUDE=input_0d,pytree,
data_index,scan,fori_loop,at_set,at_get_fill,sort_key_val DIFFOPS_FUZZ_IGNORE=
sparse:torch``.

``make fuzz`` runs a long campaign that keeps going after a disagreement and prints a
summary (``python -m fuzz``, see ``tests/fuzz/__main__.py``).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _backends import installed_selected_backends
from fuzz.grammar import FEATURES, GROUPS, function_specs
from fuzz.repro import report
from fuzz.run import BACKEND_ORDER, KINDS, Focus, make_case, run_case

# Functions per group in CI: about 6 s of CPU each (JAX compiles eight operators and
# four sparse ones), so about 85 s for all three groups on an idle machine.
CI_EXAMPLES = {"core": 6, "jax_variants": 4, "data": 4}


def _env_list(name: str, allowed: tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    value = os.environ.get(name, "")
    items = frozenset(item.strip() for item in value.split(",") if item.strip())
    unknown = items - set(allowed)
    if unknown:
        raise ValueError(f"{name}: unknown {sorted(unknown)}; known: {sorted(allowed)}")
    return items


EXCLUDED = _env_list("DIFFOPS_FUZZ_EXCLUDE", FEATURES)
CHECKS = _env_list("DIFFOPS_FUZZ_CHECKS", KINDS) or KINDS
IGNORED = {
    tuple(item.split(":", 1))
    for item in _env_list(
        "DIFFOPS_FUZZ_IGNORE",
        {f"{k}:{b}" for k in KINDS for b in BACKEND_ORDER},
    )
}


def ignored(finding) -> bool:
    return any((finding.kind, b) in IGNORED for b in finding.backends)


def examples(group: str) -> int:
    value = os.environ.get("DIFFOPS_FUZZ_EXAMPLES")
    return int(value) if value else CI_EXAMPLES[group]


@pytest.mark.parametrize("group", list(GROUPS))
def test_fuzz(group):
    backends = installed_selected_backends()
    if len(backends) < 2:
        pytest.skip(f"fewer than two selected backends installed: {backends}")
    features = GROUPS[group] - EXCLUDED
    focus: list[Focus] = []  # set at the first failure, so shrinking reruns only it

    @settings(
        max_examples=examples(group),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(spec=function_specs(features), seed=st.integers(0, 2**32 - 1))
    def check(spec, seed):
        case = make_case(spec, seed)
        assume(case is not None)
        found, _ = run_case(case, backends, focus[0] if focus else None, CHECKS)
        found = [finding for finding in found if not ignored(finding)]
        if found:
            if not focus:
                focus.append(Focus.on(found[0]))
            pytest.fail(report(case, found), pytrace=False)

    check()


# ---------------------------------------------------------------------------------
# Hand-written trees of the grammar for the defects of issue 16 that the random
# search found: the same checks, deterministic and fast, one construct each.


def _known_specs():
    from fuzz.grammar import XMAX, DataSpec, FunctionSpec, Node

    x = Node("x", (3,), (), (), XMAX)

    def spec(root, data=None, group="jax_variants"):
        return FunctionSpec(root, (3,), data, "auto", GROUPS[group])

    index_data = DataSpec("tuple")
    index_data.index_leaves.append(((3,), 3))
    head_data = DataSpec("dict", head_rows=(2, 3), head_cols=3)
    permuted = Node("take", (3,), (x,), ((2, 0, 1), (3,), "sort_key_val"), XMAX)
    first = Node("element", (), (x,), ((0,),), XMAX)
    second = Node("element", (), (x,), ((1,),), XMAX)
    product = Node("mul", (), (first, second), (), XMAX**2)
    stacked = Node("stack", (3,), (product, first, second), ("at_set",), XMAX**2)
    return {
        "scan": spec(Node("recurrence", (3,), (x,), ("affine", False, "scan"), 9.0)),
        "fori_loop": spec(
            Node("recurrence", (), (x,), ("affine", True, "fori_loop"), 9.0)
        ),
        "sort_key_val": spec(Node("power", (3,), (permuted,), (2,), 2.0)),
        "at_set": spec(
            Node("sum", (), (Node("power", (3,), (stacked,), (2,), 2.0),), (None,), 6.0)
        ),
        "data_index": spec(
            Node(
                "power", (3,), (Node("data_take", (3,), (x,), (0,), XMAX),), (2,), 2.0
            ),
            index_data,
            "data",
        ),
        "pytree_shape_change": spec(
            Node("head", (2,), (x,), (False,), 5.0), head_data, "data"
        ),
    }


@pytest.mark.parametrize("name", list(_known_specs()))
def test_fuzz_known_constructs(name):
    backends = installed_selected_backends()
    if len(backends) < 2:
        pytest.skip(f"fewer than two selected backends installed: {backends}")
    case = make_case(_known_specs()[name], seed=1)
    assert case is not None
    found, tally = run_case(case, backends, kinds=CHECKS)
    assert tally.comparisons["cross"]
    assert tally.comparisons["sparse"]
    assert not found, report(case, found)
