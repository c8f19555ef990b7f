"""Hypothesis: random shapes and points on the shaped models.

Backends are compared with each other and with finite differences. Shapes are ``()``,
``(n,)`` or ``(m, n)`` with at most 4 elements per axis and 8 in all; points are
bounded floats in [-2, 2]. Derivative functions are cached per shape (``_cases``), so
JAX compiles each (model, operator, shape) once. SymNum generates code per shape and
is slow, so it has its own smaller property test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from _backends import SELECTED_BACKENDS, installed_selected_backends, require_backend
from _cases import assert_outputs_match, derivative
from _fd import assert_fd_close, fd_comparisons
from diffops.models import SHAPED_MODELS, applicable_ops, reference

MODEL_OPS = [
    (name, op) for name, model in SHAPED_MODELS.items() for op in applicable_ops(model)
]

shapes = st.one_of(
    st.just(()),
    st.tuples(st.integers(1, 4)),
    st.tuples(st.integers(1, 4), st.integers(1, 4)).filter(lambda s: s[0] * s[1] <= 8),
)


@st.composite
def problems(draw, model_ops=MODEL_OPS):
    name, op = draw(st.sampled_from(model_ops))
    shape = draw(shapes)
    x = draw(
        hnp.arrays(
            np.float64,
            shape,
            elements=st.floats(
                -2.0, 2.0, allow_nan=False, allow_infinity=False, width=64
            ),
        )
    )
    seed = draw(st.integers(0, 2**32 - 1))
    return name, op, shape, x, seed


def _compare_backends(backends, name, op, shape, x, seed):
    model = SHAPED_MODELS[name]
    results = {b: derivative(b, model, shape, op)(x) for b in backends}
    expected = reference(model, op, x)
    for backend, result in results.items():
        assert_outputs_match(
            result,
            expected,
            dtype=np.dtype(np.float64),
            rtol=1e-8,
            atol=1e-10,
            closure_key=("prop", seed),
            what=f"{op} of {name} at S={shape} on {backend} vs closed form",
        )
    first, *others = backends
    for other in others:
        assert_outputs_match(
            results[other],
            results[first],
            dtype=np.dtype(np.float64),
            rtol=1e-10,
            atol=1e-10,
            closure_key=("prop", seed),
            what=f"{op} of {name} at S={shape}: {other} vs {first}",
        )
    return results


NON_SYMNUM = [b for b in SELECTED_BACKENDS if b != "symnum"]


@pytest.mark.skipif(len(NON_SYMNUM) < 1, reason="no non-symnum backend selected")
@settings(max_examples=20)
@given(problems())
def test_backends_agree_and_match_finite_differences(problem):
    name, op, shape, x, seed = problem
    backends = [b for b in installed_selected_backends() if b != "symnum"]
    if not backends:
        pytest.skip("no selected non-symnum backend is installed")
    _compare_backends(backends, name, op, shape, x, seed)
    # Finite differences of the first backend's own lower-order outputs.
    model = SHAPED_MODELS[name]
    comparisons = fd_comparisons(
        derivative(backends[0], model, shape, op), op, x, np.random.default_rng(seed)
    )
    assert_fd_close(
        comparisons, context=f"({op} of {name} at S={shape} on {backends[0]})"
    )


@pytest.mark.skipif("symnum" not in SELECTED_BACKENDS, reason="symnum not selected")
@settings(max_examples=6)
@given(problems())
def test_symnum_agrees_at_random_shapes(problem):
    require_backend("symnum")
    name, op, shape, x, seed = problem
    others = [
        b for b in installed_selected_backends() if b in ("autograd", "torch", "jax")
    ]
    _compare_backends(["symnum", *others[:1]], name, op, shape, x, seed)
    comparisons = fd_comparisons(
        derivative("symnum", SHAPED_MODELS[name], shape, op),
        op,
        x,
        np.random.default_rng(seed),
    )
    assert_fd_close(comparisons, context=f"({op} of {name} at S={shape} on symnum)")


@settings(max_examples=25)
@given(shapes, st.sampled_from(MODEL_OPS))
def test_output_shapes_at_random_shapes(shape, model_op):
    # Cheap structural property on the fastest installed non-symnum backend.
    from _cases import expected_shapes

    backends = [b for b in installed_selected_backends() if b in ("autograd", "torch")]
    if not backends:
        pytest.skip("needs autograd or torch")
    name, op = model_op
    model = SHAPED_MODELS[name]
    x = np.full(shape, 0.3)
    f_shape = () if model.scalar else (2,)
    result = derivative(backends[0], model, shape, op)(x)
    for out, want in zip(result, expected_shapes(op, shape, f_shape), strict=True):
        if callable(out):
            assert tuple(out.arg_shape) == want[0]
            assert np.shape(out(np.zeros(want[0]))) == want[1]
        else:
            assert np.shape(out) == want
