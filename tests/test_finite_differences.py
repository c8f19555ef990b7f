"""Oracle 2: each output against finite differences of the lower-order outputs.

Independent of the closed forms: a derivative function is checked only against
itself (see ``_fd.py``), so a wrong closed form cannot hide a wrong derivative.
"""

from __future__ import annotations

import numpy as np
import pytest

import diffops
from _backends import require_backend
from _cases import CASES_BY_ID, backend_case_op_params, case_derivative, points, rng_for
from _fd import assert_fd_close, fd_comparisons

FD_POINTS = 2


@pytest.mark.parametrize(("backend", "case", "op"), backend_case_op_params())
def test_matches_finite_differences(backend, case, op):
    require_backend(backend)
    derivative = case_derivative(backend, case, op)
    for index, x in enumerate(points(case)[:FD_POINTS]):
        comparisons = fd_comparisons(
            derivative, op, x, rng_for("fd", case.id, op, index)
        )
        assert_fd_close(
            comparisons, context=f"({op} of {case.id} on {backend}, point {index})"
        )


def test_fd_oracle_detects_a_wrong_derivative():
    # The oracle itself must not pass vacuously: a Hessian off by 1e-4 is caught.
    def wrong(x):
        return 2 * np.eye(x.size) + 1e-4, 2 * x, np.sum(x**2)

    comparisons = fd_comparisons(
        wrong, "hessian_grad_and_value", np.ones(3), rng_for("fd")
    )
    with pytest.raises(AssertionError, match="hessian"):
        assert_fd_close(comparisons)


def test_fd_oracle_checks_closures():
    # A wrong MTP closure (with correct arrays) is caught too.
    def wrong(x):
        return (lambda m: np.ones(3), np.zeros((3, 3)), np.zeros(3), 0.0)

    comparisons = fd_comparisons(
        wrong, "mtp_hessian_grad_and_value", np.ones(3), rng_for("fd")
    )
    with pytest.raises(AssertionError, match="mtp"):
        assert_fd_close(comparisons)


@pytest.mark.parametrize(
    ("backend", "case", "op"),
    backend_case_op_params(cases=(CASES_BY_ID["banana"], CASES_BY_ID["sq_sin-2x3"])),
)
def test_package_checker_agrees(backend, case, op):
    # diffops.check_derivatives (the package's own checker) passes on correct
    # derivatives; our oracle above is independent of it.
    require_backend(backend)
    errors = diffops.check_derivatives(
        case_derivative(backend, case, op), points(case)[0]
    )
    assert errors, "check_derivatives checked nothing"
    assert all(e < 1e-5 for e in errors.values()), errors


def test_package_checker_flags_a_wrong_derivative():
    def wrong(x):
        return 2 * np.eye(x.size) + 1e-3, 2 * x, np.sum(x**2)

    with pytest.raises(AssertionError, match="hessian"):
        diffops.check_derivatives(wrong, np.ones(3), "hessian_grad_and_value")
