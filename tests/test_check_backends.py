"""No false alarms: check_derivatives passes every backend's derivatives of every
test case, in float64 and float32, with the default tolerances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from _cases import CASES, case_derivative, points

PARAMS = [
    pytest.param(backend, case, dtype, id=f"{backend}-{case.id}-{dtype}")
    for backend in SELECTED_BACKENDS
    for case in CASES
    if case.runs_on(backend)
    for dtype in ("float64", "float32")
    # jax_nojit runs the same JAX code op by op (slowly): float64 suffices there.
    if not (backend == "jax_nojit" and dtype == "float32")
]


@pytest.mark.parametrize(("backend", "case", "dtype"), PARAMS)
def test_backend_derivatives_pass(backend, case, dtype):
    require_backend(backend)
    func, _ = case.model.function(backend, case.shape)
    supplied = {op: case_derivative(backend, case, op) for op in case.ops}
    x = points(case)[0].astype(dtype)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Output seems independent of input")
        report = diffops.check_derivatives(func, x, **supplied)
    assert report.passed, str(report)
    assert {c.op_name for c in report.checks} == set(case.ops)
    statuses = {c.status for c in report.checks}
    assert statuses <= {"passed"}, str(report)
    # Every derivative output was compared with finite differences.
    for op in case.ops:
        compared = {
            c.part
            for c in report.for_operator(op).checks
            if c.test.startswith("finite differences")
        }
        assert compared == set(diffops.operators.OPERATORS[op].outputs[:-1]), op
    assert np.isfinite(report.max_rel_error)
