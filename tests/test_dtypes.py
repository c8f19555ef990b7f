"""Dtypes at the NumPy boundary.

float64 stays float64 (on JAX without touching ``jax_enable_x64``), float32 stays
float32, other real inputs (lists, ints, bools) become float64, complex is a TypeError.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from _cases import CASES_BY_ID, assert_outputs_match, case_derivative, points
from diffops.errors import InputTypeError
from diffops.models import MODELS, SHAPED_MODELS, applicable_ops, reference
from diffops.operators import OPERATORS, shape_of

JAX_BACKENDS = [
    b for b in ("jax", "jax_nojit", "jax_codegen") if b in SELECTED_BACKENDS
]


# ---------------------------------------------------------------------------------
# float64 on JAX with jax_enable_x64 False


@pytest.mark.parametrize("backend", JAX_BACKENDS)
@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (MODELS["banana"], (2,)),
        (SHAPED_MODELS["sq_sin"], (2, 3)),
        (SHAPED_MODELS["log1p_norm"], ()),
    ],
    ids=["banana", "sq_sin-2x3", "log1p_norm-0d"],
)
def test_float64_on_jax_without_x64(backend, model, shape, jax_x64_disabled):
    import jax

    assert jax.config.jax_enable_x64 is False
    rng = np.random.default_rng(1)
    for op in applicable_ops(model):
        func, options = model.function(backend, shape)
        seen = []

        def traced(x, func=func, seen=seen):
            seen.append(x.dtype)  # runs at trace time on jax, every call on jax_nojit
            return func(x)

        traced.__name__ = model.name
        derivative = diffops.DerivativeFunction(traced, op, backend, **options)
        x = model.sample(rng, shape)
        result = derivative(x)
        assert jax.config.jax_enable_x64 is False, "the global flag was changed"
        assert seen, op
        assert all(d == np.float64 for d in seen), (op, seen)
        # 1e-12 is far below float32 resolution: proves the float64 computation.
        assert_outputs_match(
            result,
            reference(model, op, x),
            dtype=np.dtype(np.float64),
            rtol=1e-12,
            atol=1e-12,
            closure_key=("x64", model.name, op),
            what=f"{op} of {model.name} on {backend} with jax_enable_x64=False",
        )
        assert jax.config.jax_enable_x64 is False, "a closure changed the global flag"
    assert jax.config.jax_enable_x64 is False


def test_x64_flag_untouched_by_jax_closures_after_the_call(jax_x64_disabled):
    import jax
    import jax.numpy as jnp

    mtp, *_ = diffops.mtp_hessian_grad_and_value(lambda x: jnp.sum(x**4), "jax")(
        np.array([1.0, 2.0])
    )
    out = mtp(np.eye(2))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, 24 * np.array([1.0, 2.0]), rtol=1e-14)
    assert jax.config.jax_enable_x64 is False
    # Outside diffops, JAX still works in its default 32-bit mode.
    assert jnp.asarray(np.float64(1.0)).dtype == jnp.float32


# ---------------------------------------------------------------------------------
# float32 in, float32 out


FLOAT32_CASES = ("banana", "torus", "log1p_norm-2x3", "sq_sin-0d")


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("case_id", FLOAT32_CASES)
def test_float32_in_float32_out(backend, case_id):
    require_backend(backend)
    case = CASES_BY_ID[case_id]
    x32 = points(case)[0].astype(np.float32)
    for op in case.ops:
        result = case_derivative(backend, case, op)(x32)
        assert_outputs_match(
            result,
            reference(case.model, op, x32.astype(np.float64)),
            dtype=np.dtype(np.float32),
            rtol=1e-4,
            atol=1e-4,
            closure_key=("f32", case.id, op),
            what=f"{op} of {case.id} on {backend} (float32)",
        )
        if callable(result[0]):
            # A float64 closure argument is cast: the closure stays float32.
            out = result[0](np.zeros(result[0].arg_shape, dtype=np.float64))
            assert np.asarray(out).dtype == np.float32


# ---------------------------------------------------------------------------------
# Lists, ints and bools become float64; complex is a TypeError


REAL_INPUTS = {
    "list-of-ints": [1, 2],
    "list-of-floats": [0.5, -1.5],
    "int64-array": np.array([1, -2]),
    "int32-array": np.array([3, 1], dtype=np.int32),
    "bool-list": [True, False],
    "bool-array": np.array([False, True]),
    "float16-array": np.array([0.5, 0.25], dtype=np.float16),
    "tuple": (1, 0.5),
    "big-endian-float64": np.array([0.5, -0.25], dtype=">f8"),
    "non-contiguous": np.array([0.5, 9.0, -0.25, 9.0])[::2],
}


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("name", list(REAL_INPUTS))
def test_real_inputs_become_float64(backend, name):
    require_backend(backend)
    case = CASES_BY_ID["banana"]
    x = REAL_INPUTS[name]
    x64 = np.asarray(x, dtype=np.float64)
    for op in case.ops:
        assert_outputs_match(
            case_derivative(backend, case, op)(x),
            reference(case.model, op, x64),
            dtype=np.dtype(np.float64),
            rtol=1e-10,
            atol=1e-12,
            closure_key=("real", name, op),
            what=f"{op} on {backend} of {name} input",
        )


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize(
    "x", [3, True, np.int64(2), 0.5], ids=["int", "bool", "np-int", "float"]
)
def test_python_scalars_are_0d_inputs(backend, x):
    require_backend(backend)
    case = CASES_BY_ID["log1p_norm-0d"]
    x64 = np.asarray(x, dtype=np.float64)
    for op in ("hessian_grad_and_value", "jacobian_and_value"):
        assert_outputs_match(
            case_derivative(backend, case, op)(x),
            reference(case.model, op, x64),
            dtype=np.dtype(np.float64),
            rtol=1e-10,
            atol=1e-12,
            closure_key=("scalar", op),
            what=f"{op} on {backend} of {x!r}",
        )


COMPLEX_INPUTS = {
    "complex128": np.array([1.0 + 1.0j, 2.0]),
    "complex64": np.array([1.0, 2.0], dtype=np.complex64),
    "list": [1j, 2.0],
}


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("op", diffops.ALL_DIFF_OPS)
@pytest.mark.parametrize("name", list(COMPLEX_INPUTS))
def test_complex_input_is_a_type_error(backend, op, name):
    require_backend(backend)
    case = CASES_BY_ID["banana"]
    with pytest.raises(TypeError, match="complex") as info:
        case_derivative(backend, case, op)(COMPLEX_INPUTS[name])
    assert isinstance(info.value, InputTypeError)


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize(
    "op", [op for op, spec in OPERATORS.items() if spec.closure is not None]
)
def test_complex_closure_argument_is_a_type_error(backend, op):
    require_backend(backend)
    case = CASES_BY_ID["banana"]
    closure = case_derivative(backend, case, op)(points(case)[0])[0]
    arg = np.ones(closure.arg_shape) * (1.0 + 0.5j)
    with pytest.raises(TypeError, match="complex"):
        closure(arg)
    # Real arguments still work afterwards (banana: S = (2,), F = ()).
    expected = shape_of(OPERATORS[op].closure.out, (2,), ())
    assert np.shape(closure(arg.real)) == expected


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_non_numeric_input_is_a_type_error(backend):
    require_backend(backend)
    derivative = case_derivative(backend, CASES_BY_ID["banana"], "grad_and_value")
    with pytest.raises(TypeError):
        derivative(np.array(["a", "b"]))
    with pytest.raises(TypeError):
        derivative([object(), object()])


@pytest.mark.parametrize(
    "backend", ["jax", "jax_nojit", "jax_codegen", "autograd", "torch"]
)
def test_unpickled_float64_input_keeps_float64_and_structure(backend):
    require_backend(backend)
    from diffops.models import namespace

    x = pickle.loads(pickle.dumps(np.array([1.0, 2.0])))
    assert x.dtype == np.float64
    f = _cubic_sum(namespace(backend))
    hessian, grad, value = diffops.hessian_grad_and_value(f, backend=backend)(x)
    assert hessian.dtype == grad.dtype == np.float64
    assert type(value) is np.float64
    np.testing.assert_allclose(grad, x**2, rtol=1e-14)
    np.testing.assert_allclose(hessian, np.diag(2 * x), rtol=1e-14)


def _cubic_sum(xp):
    return lambda x: xp.sum(x**3) / 3
