"""Any input shape on every backend, with the shapes of the DESIGN.md table.

hessian ``S + S``, jacobian ``F + S``; closures take ``F`` (vjp), ``F + S`` (mhp) or
``S + S`` (mtp) and return ``S``. The expected shapes come from the table, not from
the closed forms, so this is independent of ``test_closed_forms``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from _cases import (
    CASES,
    N_POINTS,
    SHAPES,
    closure_argument,
    expected_shapes,
    outputs,
    shape_id,
)
from diffops.operators import OPERATORS

SHAPED_CASES = tuple(case for case in CASES if "-" in case.id)
ARRAY_OPS = tuple(op for op, spec in OPERATORS.items() if not spec.scalar_only)
"""The operators of array-valued functions (N-d outputs below)."""
F_SHAPES = {"log1p_norm": (), "sq_sin": (2,)}


def test_shaped_cases_cover_the_design_shapes():
    assert {case.shape for case in SHAPED_CASES} == {(), (3,), (2, 3)} == set(SHAPES)


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("case", SHAPED_CASES, ids=lambda c: c.id)
def test_output_shapes_follow_the_table(backend, case):
    require_backend(backend)
    s, f = case.shape, F_SHAPES[case.model.name]
    for op in case.ops:
        result = outputs(backend, case, op, 0)
        table = expected_shapes(op, s, f)
        assert len(result) == len(table)
        for position, (out, expected) in enumerate(zip(result, table, strict=True)):
            where = f"{op} on {backend} at S={s}, output {position}"
            if callable(out):
                arg_shape, out_shape = expected
                assert tuple(out.arg_shape) == arg_shape, where
                product = out(closure_argument(arg_shape, "shape"))
                assert np.shape(product) == out_shape, where
                assert isinstance(product, np.ndarray | np.generic), where
            else:
                assert np.shape(out) == expected, where
                assert np.asarray(out).dtype == np.float64, where


@pytest.mark.parametrize(
    ("backend", "case"),
    [
        pytest.param(backend, case, id=f"{backend}-{case.id}")
        for backend in SELECTED_BACKENDS
        for case in CASES
        if (case.shape == () or case.model.scalar) and case.runs_on(backend)
    ],
)
def test_zero_d_results_are_numpy_scalars(backend, case):
    # docs/decisions.md: 0-d results are NumPy scalars on every backend (DESIGN.md:
    # "the same on every backend"), including closures' 0-d products.
    require_backend(backend)
    for op, index in itertools.product(case.ops, range(N_POINTS)):
        # Every call, not just the first: per-call fast paths must agree with it.
        result = outputs(backend, case, op, index)
        for position, out in enumerate(result):
            if callable(out):
                out = out(closure_argument(tuple(out.arg_shape), "scalar"))
            if np.ndim(out) == 0:
                assert isinstance(out, np.generic), (
                    f"{op} of {case.id} on {backend}, output {position}: 0-d result is "
                    f"{type(out).__name__}, expected a NumPy scalar (np.float64)"
                )
                assert out.dtype == np.float64


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("shape", [(1,), (4,), (1, 1), (2, 2, 2)], ids=shape_id)
def test_other_shapes(backend, shape):
    # Beyond the three design shapes: length-1 axes and a 3-d input.
    require_backend(backend)
    from _cases import derivative
    from diffops.models import SHAPED_MODELS, reference

    model = SHAPED_MODELS["log1p_norm"]
    x = np.linspace(-0.7, 0.9, int(np.prod(shape))).reshape(shape)
    op = "mtp_hessian_grad_and_value"
    got = derivative(backend, model, shape, op)(x)
    expected = reference(model, op, x)
    m = closure_argument(shape + shape, "other", shape)
    np.testing.assert_allclose(got[0](m), expected[0](m), rtol=1e-10, atol=1e-12)
    for g, e in zip(got[1:], expected[1:], strict=True):
        assert np.shape(g) == np.shape(e)
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


# An array-valued function with an N-d output: f(x) = [x, x²], so F = (2,) + S.


def _stacked(backend, shape):
    from diffops.models import namespace

    if backend != "symnum":
        ns = namespace(backend)

        def stacked(x):
            return ns.stack([x, x**2])

        return stacked, {}
    import symnum.numpy as snp

    def stacked(x):  # symnum.numpy.array stacks scalars only: stack the elements
        rows = [list(x.flat), list((x**2).flat)]
        return snp.array(rows).reshape((2, *shape))

    if shape == ():
        return stacked, {"arg_shape": ()}
    import symnum

    return symnum.numpify(shape)(stacked), {}


def _stacked_reference(op, x):
    s, n = x.shape, x.size
    value = np.stack([x, x**2])
    jac = np.stack([np.eye(n), np.diag(2 * x.ravel())]).reshape((2, *s, *s))

    def vjp(v):
        return v[0] + 2 * x * v[1]

    def mhp(m):
        m = np.reshape(m, (2, n, n))
        return (2 * np.diagonal(m[1])).reshape(s)

    def jvp(v):
        return np.stack([v, 2 * x * v])

    return {
        "vjp_and_value": (vjp, value),
        "jacobian_and_value": (jac, value),
        "mhp_jacobian_and_value": (mhp, jac, value),
        "jvp_and_value": (jvp, value),
    }[op]


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("op", ARRAY_OPS)
def test_nd_output_shapes(backend, shape, op):
    require_backend(backend)
    import diffops
    from _cases import assert_outputs_match, rng_for
    from _fd import assert_fd_close, fd_comparisons

    func, options = _stacked(backend, shape)
    derivative = diffops.DerivativeFunction(func, op, backend, **options)
    x = rng_for("stacked", shape).uniform(-1, 1, size=shape)
    result = derivative(x)
    f = (2, *shape)
    for out, want in zip(result, expected_shapes(op, shape, f), strict=True):
        if callable(out):
            assert tuple(out.arg_shape) == want[0]
        else:
            assert np.shape(out) == want
    assert_outputs_match(
        result,
        _stacked_reference(op, x),
        dtype=np.dtype(np.float64),
        rtol=1e-10,
        atol=1e-12,
        closure_key=("stacked", shape, op),
        what=f"{op} of [x, x²] at S={shape} on {backend}",
    )
    assert_fd_close(fd_comparisons(derivative, op, x, rng_for("stacked-fd", shape)))


@pytest.mark.parametrize("op", ["jacobian_and_value", "vjp_and_value"])
def test_symnum_zero_d_elementwise_function(op):
    require_backend("symnum")
    import symnum.numpy as snp

    d = getattr(diffops, op)(
        lambda x: snp.sin(x) * x**2, backend="symnum", arg_shape=()
    )
    out = d(np.array(0.5))
    assert np.isclose(out[-1], np.sin(0.5) * 0.25)


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize(
    "op", ["hessian_grad_and_value", "mtp_hessian_grad_and_value", "grad_and_value"]
)
def test_empty_input(backend, op):
    from diffops.models import SHAPED_MODELS

    require_backend(backend)
    if backend == "symnum":
        with pytest.raises(diffops.errors.MissingArgumentShapeError, match="empty"):
            getattr(diffops, op)(lambda x: x.sum(), backend=backend, arg_shape=(0,))
        return
    func, options = SHAPED_MODELS["log1p_norm"].function(backend, (0,))
    out = getattr(diffops, op)(func, backend=backend, **options)(np.zeros(0))
    arrays = [o for o in out if not callable(o)]
    expected = {
        "grad_and_value": [(0,), ()],
        "hessian_grad_and_value": [(0, 0), (0,), ()],
    }
    expected["mtp_hessian_grad_and_value"] = expected["hessian_grad_and_value"]
    assert [np.shape(a) for a in arrays] == expected[op]
    if callable(out[0]):
        assert np.shape(out[0](np.zeros((0, 0)))) == (0,)


@pytest.mark.parametrize("shape", [3, (3,)])
def test_symnum_int_and_tuple_shapes(shape):
    require_backend("symnum")
    import symnum
    import symnum.numpy as snp

    numpified = symnum.numpify(shape)(lambda x: snp.sum(x**2))
    for func, options in (
        (numpified, {}),
        (lambda x: snp.sum(x**2), {"arg_shape": shape}),
    ):
        grad, value = diffops.grad_and_value(func, backend="symnum", **options)(
            np.array([1.0, 2.0, 3.0])
        )
        np.testing.assert_allclose(grad, [2.0, 4.0, 6.0])
        assert value == 14.0
