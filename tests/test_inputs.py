"""Inputs are never mutated or aliased; NaN and inf propagate."""

from __future__ import annotations

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from _cases import CASES_BY_ID, backend_case_op_params, case_derivative, points

MUTATION_CASES = tuple(
    CASES_BY_ID[c] for c in ("banana", "torus", "log1p_norm-2x3", "sq_sin-0d")
)


@pytest.mark.parametrize(
    ("backend", "case", "op"), backend_case_op_params(cases=MUTATION_CASES)
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_input_never_mutated(backend, case, op, dtype):
    require_backend(backend)
    x = points(case)[2].astype(dtype)
    saved = x.copy()
    result = case_derivative(backend, case, op)(x)
    for out in result:
        if callable(out):
            out(np.ones(out.arg_shape, dtype=dtype))
    np.testing.assert_array_equal(x, saved)
    assert x.dtype == dtype
    assert x.flags.writeable


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_read_only_input_accepted(backend):
    require_backend(backend)
    case = CASES_BY_ID["banana"]
    x = points(case)[0].copy()
    x.flags.writeable = False
    for op in case.ops:
        result = case_derivative(backend, case, op)(x)
        if callable(result[0]):
            result[0](np.ones(result[0].arg_shape))


def aligned(values, alignment=64):
    """A float64 copy of ``values`` whose data starts on an ``alignment`` boundary."""
    values = np.asarray(values, dtype=np.float64)
    buffer = np.empty(values.size + alignment // 8, dtype=np.float64)
    offset = (-buffer.ctypes.data % alignment) // 8
    out = buffer[offset : offset + values.size].reshape(values.shape)
    out[...] = values
    assert out.ctypes.data % alignment == 0
    return out


def head(x):
    return x[:2]  # the constraint/observation pattern: a slice of the input


def identity(x):
    return x


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("func", [head, identity])
@pytest.mark.parametrize(
    "op", ["jacobian_and_value", "vjp_and_value", "mhp_jacobian_and_value"]
)
def test_outputs_do_not_alias_the_input(backend, func, op):
    # A careful user (e.g. an integrator updating x in place) expects results that
    # do not change when x changes afterwards -- on every backend alike.
    require_backend(backend)
    options = {}
    if backend == "symnum":
        import symnum

        func = symnum.numpify((3,))(func)
    # 64-byte aligned, so that frameworks that can wrap NumPy memory without a copy
    # (JAX on CPU does for aligned arrays) deterministically get the chance to.
    x = aligned([0.5, -1.0, 2.0])
    result = getattr(diffops, op)(func, backend=backend, **options)(x)
    arrays = [out for out in result if not callable(out)]
    saved = [np.array(out) for out in arrays]
    for out in arrays:
        assert not np.shares_memory(out, x), (
            f"an output of {op} on {backend} is a view of x"
        )
    x += 10.0
    for out, before in zip(arrays, saved, strict=True):
        np.testing.assert_array_equal(out, before)


# ---------------------------------------------------------------------------------
# NaN and inf propagate (NumPy's own "invalid value" RuntimeWarnings are expected)

pytestmark_nan = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytestmark_nan
@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("case_id", ["log1p_norm-3", "sq_sin-3"])
def test_nan_propagates(backend, case_id):
    require_backend(backend)
    case = CASES_BY_ID[case_id]
    x = np.array([np.nan, 0.5, -0.25])
    for op in case.ops:
        result = case_derivative(backend, case, op)(x)
        value = np.asarray(result[-1])
        assert np.isnan(value).any(), f"{op} on {backend}: NaN did not reach the value"
        derivative = result[-2]
        if callable(derivative):
            derivative = derivative(np.ones(derivative.arg_shape))
        assert np.isnan(np.asarray(derivative)).any(), f"{op} on {backend}"
        if callable(result[0]):
            assert np.isnan(result[0](np.ones(result[0].arg_shape))).any()


@pytestmark_nan
@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_inf_propagates(backend, sign):
    require_backend(backend)
    case = CASES_BY_ID["sq_sin-3"]
    x = np.array([sign * np.inf, 0.5, -0.25])
    for op in case.ops:
        result = case_derivative(backend, case, op)(x)
        value = np.asarray(result[-1])
        assert value[0] == np.inf, f"{op} on {backend}: Σ x² should be inf, got {value}"
        first = result[-2]
        if callable(first):  # vjp, jvp: the product with the first basis vector
            first = first(
                np.eye(1, int(np.prod(first.arg_shape))).reshape(first.arg_shape)
            )
        assert not np.isfinite(np.asarray(first)).all(), f"{op} on {backend}: {first}"


@pytestmark_nan
@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_nan_in_closure_argument_propagates(backend):
    require_backend(backend)
    case = CASES_BY_ID["log1p_norm-3"]
    closure = case_derivative(backend, case, "mtp_hessian_grad_and_value")(
        points(case)[0]
    )[0]
    m = np.ones((3, 3))
    m[0, 0] = np.nan
    assert np.isnan(closure(m)).any()
