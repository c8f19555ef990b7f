"""The derivative checker, diffops.check_derivatives."""

from __future__ import annotations

import numpy as np

import diffops
from _backends import require_backend


def _cubic_sum(xp):
    return lambda x: xp.sum(x**3) / 3


def test_check_derivatives_accepts_correct_float32():
    require_backend("jax")

    def banana(x):
        return -(x[0] ** 2) / 2 - (x[1] - x[0] ** 2) ** 2

    x = np.array([0.3, 0.5], np.float32)
    for op in (
        "grad_and_value",
        "hessian_grad_and_value",
        "mtp_hessian_grad_and_value",
    ):
        diffops.check_derivatives(getattr(diffops, op)(banana), x)
