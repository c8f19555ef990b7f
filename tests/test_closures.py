"""Product closures (vjp, jvp, hvp, mhp, mtp) at the NumPy boundary; compiled on JAX."""

from __future__ import annotations

import re

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from _cases import CASES_BY_ID, case_derivative, points
from diffops.errors import ShapeMismatchError
from diffops.operators import ALL_DIFF_OPS, OPERATORS, shape_of

CLOSURE_OPS = tuple(op for op in ALL_DIFF_OPS if OPERATORS[op].closure is not None)
CLOSURE_CASES = ("banana", "torus", "log1p_norm-2x3", "sq_sin-0d")


def closure_params():
    return [
        pytest.param(backend, case_id, op, id=f"{backend}-{case_id}-{op}")
        for backend in SELECTED_BACKENDS
        for case_id in CLOSURE_CASES
        for op in CLOSURE_OPS
        if op in CASES_BY_ID[case_id].ops
    ]


@pytest.mark.parametrize(("backend", "case_id", "op"), closure_params())
def test_closures_return_numpy(backend, case_id, op):
    require_backend(backend)
    case = CASES_BY_ID[case_id]
    closure, *arrays = case_derivative(backend, case, op)(points(case)[0])
    assert callable(closure)
    spec = OPERATORS[op].closure
    s, f = case.shape, np.shape(arrays[-1])
    assert closure.arg_shape == shape_of(spec.arg, s, f)
    out = closure(np.ones(closure.arg_shape))
    assert isinstance(out, np.ndarray | np.generic), type(out)
    assert np.shape(out) == shape_of(spec.out, s, f)
    assert np.asarray(out).dtype == np.float64
    # Lists are accepted as closure arguments too.
    listed = closure(np.ones(closure.arg_shape).tolist())
    np.testing.assert_array_equal(listed, out)


@pytest.mark.parametrize(("backend", "case_id", "op"), closure_params())
def test_closures_check_their_argument_shape(backend, case_id, op):
    require_backend(backend)
    case = CASES_BY_ID[case_id]
    closure = case_derivative(backend, case, op)(points(case)[0])[0]
    expected = tuple(closure.arg_shape)
    for wrong in ((*expected, 1), (7,), (3, 5, 2)):
        if wrong == expected:
            continue
        with pytest.raises(ShapeMismatchError) as info:
            closure(np.ones(wrong))
        assert isinstance(info.value, ValueError)
        message = str(info.value)
        assert str(wrong) in message, message
        assert str(expected) in message, message


@pytest.mark.parametrize(("backend", "case_id", "op"), closure_params())
def test_closures_unaffected_by_later_mutation_of_x(backend, case_id, op):
    require_backend(backend)
    case = CASES_BY_ID[case_id]
    x = points(case)[1].copy()
    closure, *arrays = case_derivative(backend, case, op)(x)
    arg = np.random.default_rng(3).standard_normal(closure.arg_shape)
    before = np.array(closure(arg))
    arrays_before = [np.array(a) for a in arrays]
    x[...] = 2 * x + 1.0  # the caller reuses its buffer
    np.testing.assert_array_equal(closure(arg), before)
    for a, b in zip(arrays, arrays_before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_closure_argument_is_not_mutated(backend):
    require_backend(backend)
    case = CASES_BY_ID["log1p_norm-2x3"]
    for op in CLOSURE_OPS:
        closure = case_derivative(backend, case, op)(points(case)[0])[0]
        arg = np.random.default_rng(4).standard_normal(closure.arg_shape)
        saved = arg.copy()
        closure(arg)
        closure(arg.astype(np.float32))
        np.testing.assert_array_equal(arg, saved)


def test_closure_repr_and_name():
    require_backend("autograd")
    closure = case_derivative(
        "autograd", CASES_BY_ID["torus"], "mhp_jacobian_and_value"
    )(points(CASES_BY_ID["torus"])[0])[0]
    assert closure.__name__ == "mhp"
    text = repr(closure)
    assert "mhp" in text
    assert "(1, 3)" in text
    assert "(3,)" in text


# ---------------------------------------------------------------------------------
# Compiled on JAX: no retracing, no recompiling at the same shape and dtype


def _counting_function(traces):
    import jax.numpy as jnp

    def counted(x):
        traces.append(x.shape)  # Python side effect: runs once per trace
        return jnp.sum(jnp.sin(x) ** 3) + jnp.sum(x**2)

    return counted


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op", CLOSURE_OPS)
def test_jax_closures_compiled_once(op, dtype, jax_compiles):
    traces = []
    derivative = diffops.DerivativeFunction(_counting_function(traces), op, "jax")
    x = np.linspace(-1, 1, 4).astype(dtype)

    closure = derivative(x)[0]
    first_compiles = jax_compiles.count
    assert first_compiles >= 1, "the operator was not compiled"
    assert len(traces) == 1

    arg = np.ones(closure.arg_shape, dtype=dtype)
    closure(arg)
    assert jax_compiles.count > first_compiles, "the closure did not run compiled"
    after_first_closure = jax_compiles.count

    for k in range(10):  # the same closure, many calls at the same shape
        closure(arg * k)
    assert jax_compiles.count == after_first_closure, "the closure recompiled"

    for k in range(5):  # the operator again, same shape and dtype, new closures
        new_closure = derivative(x + 0.1 * k)[0]
        new_closure(arg)
    assert jax_compiles.count == after_first_closure, "a repeated call compiled again"
    assert len(traces) == 1, f"the user's function was retraced: {traces}"


def test_jax_operator_not_recompiled_on_float64_path(jax_compiles, jax_x64_disabled):
    traces = []
    derivative = diffops.hessian_grad_and_value(_counting_function(traces), "jax")
    x = np.array([0.1, 0.2, 0.3])
    derivative(x)
    compiles = jax_compiles.count
    for k in range(10):
        hessian, grad, _value = derivative(x * k)
        assert hessian.dtype == grad.dtype == np.float64
    assert jax_compiles.count == compiles
    assert len(traces) == 1
    # float32 is a new program; then it is cached too.
    derivative(x.astype(np.float32))
    assert len(traces) == 2
    compiles = jax_compiles.count
    derivative(x.astype(np.float32) + 1)
    derivative(x + 1)
    assert jax_compiles.count == compiles
    assert len(traces) == 2


def test_jax_new_shape_compiles_once_more(jax_compiles):
    traces = []
    derivative = diffops.grad_and_value(_counting_function(traces), "jax")
    derivative(np.ones(3))
    derivative(np.ones((2, 2)))
    derivative(np.zeros(3))
    derivative(np.zeros((2, 2)))
    assert [tuple(t) for t in traces] == [(3,), (2, 2)]


def _unrolled(x):
    import jax.numpy as jnp

    total = 0.0
    for i in range(12):  # a Python loop: 12 copies of the same operations
        total = total + jnp.exp(-((x[i % 3] - 0.1 * i) ** 2)) * x[(i + 1) % 3]
    return total


def test_jax_large_programs_compile_with_xlas_older_emitters(monkeypatch):
    require_backend("jax")
    require_backend("jax_nojit")
    from diffops.backends import jax as jax_backend
    from diffops.backends import jax_compile

    x = np.array([0.3, -0.2, 0.5])
    small = jax_backend.JaxBackend(jit=True).compile(_unrolled)
    small(x)
    assert small.equations > 40
    assert not small.large  # the default threshold is far above this program

    monkeypatch.setattr(jax_compile, "LARGE_PROGRAM", 40)
    traces = []

    def counted(x):
        traces.append(x.shape)
        return _unrolled(x)

    large = jax_backend.JaxBackend(jit=True).compile(counted)
    np.testing.assert_allclose(large(x), small(x), rtol=1e-12)
    assert large.large
    large(x + 1)
    assert len(traces) == 1, "counting the equations traced the program again"

    # End to end: the derivative program above the threshold agrees op by op.
    hessian = diffops.hessian_grad_and_value(_unrolled, "jax")(x)
    expected = diffops.hessian_grad_and_value(_unrolled, "jax_nojit")(x)
    for got, want in zip(hessian, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_jax_programs_are_called_directly_once_settled(monkeypatch):
    """After its first call, a compiled JAX program's jitted function is called
    without SizedProgram's own frame (for values and for closures)."""
    require_backend("jax")
    import jax

    from diffops.backends import jax_compile

    dispatched = []
    original = jax_compile.SizedProgram.__call__

    def counted(self, *args, **kwargs):
        dispatched.append(self.settled is None)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jax_compile.SizedProgram, "__call__", counted)
    x = np.array([0.3, -0.2, 0.5])
    program = jax_compile.jit(jax, _unrolled, {})
    assert program.settled is None
    assert not program.large
    program(x)
    assert program.settled is not None
    assert not program.large
    for op in ("grad_and_value", "hvp_grad_and_value"):
        dispatched.clear()
        derivative = getattr(diffops, op)(_unrolled, "jax")
        first = derivative(x)
        again = [derivative(x) for _ in range(3)][-1]
        assert dispatched == [True], op  # the first call only
        np.testing.assert_allclose(again[-1], first[-1])


def test_jax_closure_appliers_are_sized_and_settle():
    """A JAX closure is applied by a sized jit; after its first application the
    closure, and the closures of later calls, call the chosen function directly."""
    require_backend("jax")
    from diffops.backends import jax_compile

    x = np.array([0.3, -0.2, 0.5])
    derivative = diffops.hvp_grad_and_value(_unrolled, "jax")
    closure = derivative(x)[0]
    assert isinstance(closure._apply, jax_compile.SizedProgram)
    first = closure(np.ones(3))
    assert not isinstance(closure._apply, jax_compile.SizedProgram)
    later = derivative(x)[0]
    assert not isinstance(later._apply, jax_compile.SizedProgram)
    np.testing.assert_allclose(later(np.ones(3)), first)


def test_jax_nojit_closures_run_and_match_jax():
    require_backend("jax_nojit")
    require_backend("jax")
    case = CASES_BY_ID["log1p_norm-2x3"]
    op = "mtp_hessian_grad_and_value"
    x = points(case)[0]
    m = np.random.default_rng(5).standard_normal((2, 3, 2, 3))
    a = case_derivative("jax", case, op)(x)[0](m)
    b = case_derivative("jax_nojit", case, op)(x)[0](m)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_closure_shape_error_message_names_the_fix():
    require_backend("autograd")
    closure = case_derivative(
        "autograd", CASES_BY_ID["banana"], "mtp_hessian_grad_and_value"
    )(points(CASES_BY_ID["banana"])[0])[0]
    with pytest.raises(ValueError, match=re.escape("(2, 2)")) as info:
        closure(np.ones(2))
    assert "(2,)" in str(info.value)
    assert "mtp" in str(info.value)


@pytest.mark.parametrize("backend", ["autograd", "torch"])
def test_closure_unaffected_by_mutating_a_view_input(backend):
    require_backend(backend)
    from diffops.models import namespace

    ns = namespace(backend)

    def cube(x):
        return x**3 + 0 * ns.sum(x)

    base = np.array([1.0, 2.0])
    x = base.view(np.ma.MaskedArray)  # np.asarray(x) is a view sharing memory
    vjp, _ = diffops.vjp_and_value(cube, backend=backend)(x)
    before = vjp(np.ones(2))
    base[0] = 100.0
    np.testing.assert_array_equal(vjp(np.ones(2)), before)


@pytest.mark.parametrize("backend", ["autograd", "jax_nojit"])
def test_closure_output_does_not_alias_its_argument(backend):
    require_backend(backend)
    vjp, _ = diffops.vjp_and_value(lambda x: x, backend=backend)(np.ones(4))
    m = np.ones(4)
    assert not np.may_share_memory(vjp(m), m)
