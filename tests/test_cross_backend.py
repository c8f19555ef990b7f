"""Oracle 3: every installed backend agrees with every other one on float64."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from _backends import installed_selected_backends
from _cases import assert_outputs_match, case_op_params, outputs, points

FLOAT64 = np.dtype(np.float64)


@pytest.mark.parametrize(("case", "op"), case_op_params())
def test_backends_agree(case, op):
    backends = [b for b in installed_selected_backends() if case.runs_on(b)]
    if len(backends) < 2:
        pytest.skip(f"fewer than two installed backends run {case.id}: {backends}")
    results, failures = {}, {}
    for backend in backends:
        try:
            results[backend] = [
                outputs(backend, case, op, i) for i in range(len(points(case)))
            ]
        except Exception as err:  # reported below, after comparing the others
            failures[backend] = f"{type(err).__name__}: {err}"
    disagreements = []
    for first, second in itertools.combinations(results, 2):
        for index, (a, b) in enumerate(
            zip(results[first], results[second], strict=True)
        ):
            # Same container types too: 0-d results are the same kind on every backend.
            kinds_a = [type(o).__name__ for o in a if not callable(o)]
            kinds_b = [type(o).__name__ for o in b if not callable(o)]
            try:
                assert kinds_a == kinds_b, (
                    f"{op} of {case.id}, point {index}: output types differ: "
                    f"{first} {kinds_a} vs {second} {kinds_b}"
                )
                assert_outputs_match(
                    a,
                    b,
                    dtype=FLOAT64,
                    rtol=1e-10,
                    atol=1e-10,
                    closure_key=(case.id, op, index, "cross"),
                    what=f"{op} of {case.id}: {first} vs {second}, point {index}",
                )
            except AssertionError as err:
                disagreements.append(str(err))
    assert not failures, f"backends failed on {case.id}: {failures}"
    assert not disagreements, "\n\n".join(disagreements)
