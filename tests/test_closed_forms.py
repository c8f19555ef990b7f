"""Oracle 1: every backend × operator × case against the models' closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from _backends import require_backend
from _cases import (
    N_POINTS,
    assert_outputs_match,
    backend_case_op_params,
    outputs,
    points,
)
from diffops.models import reference

FLOAT64 = np.dtype(np.float64)


@pytest.mark.parametrize(("backend", "case", "op"), backend_case_op_params())
def test_matches_closed_form(backend, case, op):
    require_backend(backend)
    for index, x in enumerate(points(case)):
        assert_outputs_match(
            outputs(backend, case, op, index),
            reference(case.model, op, x),
            dtype=FLOAT64,
            rtol=1e-7,
            atol=1e-9,
            closure_key=(case.id, op, index),
            what=f"{op} of {case.id} on {backend} at point {index}",
        )


def test_several_points_per_case():
    # Seeded and distinct: the same points every run, not one point repeated.
    from _cases import CASES

    for case in CASES:
        pts = points(case)
        assert len(pts) == N_POINTS
        np.testing.assert_array_equal(pts[0], points(case)[0])
        assert not np.array_equal(pts[0], pts[1]), case.id
