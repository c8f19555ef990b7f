"""mici.autodiff compatibility: names, signatures, return order, registry records."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from diffops import jax_wrapper


def test_diff_ops_order():
    assert diffops.DIFF_OPS == (
        "vjp_and_value",
        "grad_and_value",
        "hessian_grad_and_value",
        "mtp_hessian_grad_and_value",
        "jacobian_and_value",
        "mhp_jacobian_and_value",
    )
    assert isinstance(diffops.DIFF_OPS, tuple)


def test_autodiff_backend_record():
    fields = diffops.AutodiffBackend._fields
    assert fields == ("module", "available", "function_wrapper")
    record = diffops.AutodiffBackend(jax_wrapper, True)
    assert record.function_wrapper is None
    module, available, wrapper = record  # a NamedTuple unpacks like mici's
    assert module is jax_wrapper
    assert available is True
    assert wrapper is None


def test_mici_signatures():
    assert list(inspect.signature(diffops.autodiff_fallback).parameters) == [
        "diff_func",
        "func",
        "diff_op_name",
        "name",
        "backend",
    ]
    assert list(inspect.signature(diffops.wrap_function).parameters) == [
        "function",
        "backend",
    ]


@pytest.mark.parametrize(
    "name",
    ["jax", "JAX", "Jax", "jax_nojit", "JAX_NOJIT", "AutoGrad", "SymNum", "TORCH"],
)
def test_get_backend_case_insensitive(name):
    assert diffops.get_backend(name) is diffops.get_backend(name.lower())


def test_registered_backends():
    assert diffops.registered_backends() == (
        "jax",
        "jax_nojit",
        "jax_codegen",
        "autograd",
        "symnum",
        "torch",
    )
    assert set(diffops.available_backends()) <= set(diffops.registered_backends())


@pytest.mark.parametrize("name", diffops.registered_backends())
@pytest.mark.parametrize("op", diffops.ALL_DIFF_OPS)
def test_every_backend_computes_every_operator(name, op):
    # Conformance: every backend computes every operator of the table (not only
    # Mici's six), with the table's outputs and shapes, and its Mici-style module
    # offers it.
    require_backend(name)
    from diffops.models import MODELS, SHAPED_MODELS
    from diffops.operators import OPERATORS, shape_of

    module = diffops.get_backend(name).module
    assert op in module.__all__, f"{module.__name__} does not list {op}"
    assert callable(getattr(module, op)), f"{module.__name__} lacks {op}"
    spec = OPERATORS[op]
    model = MODELS["banana"] if spec.scalar_only else SHAPED_MODELS["sq_sin"]
    func, options = model.function(name, (2,))
    x = np.array([0.3, -0.7])
    out = diffops.DerivativeFunction(func, op, name, **options)(x)
    assert isinstance(out, tuple)
    assert len(out) == spec.n_outputs
    f = np.shape(out[-1])
    assert f == (() if spec.scalar_only else (2,))
    arrays = out[1:] if spec.closure is not None else out
    assert tuple(np.shape(a) for a in arrays) == spec.array_shapes(x.shape, f)
    if spec.closure is not None:
        closure = out[0]
        assert closure.arg_shape == spec.closure_arg_shape(x.shape, f)
        result = closure(np.ones(closure.arg_shape))
        assert np.shape(result) == shape_of(spec.closure.out, x.shape, f)


def test_register_backend_rejects_incomplete_modules(isolated_registry):
    import types

    module = types.ModuleType("incomplete")
    module.grad_and_value = lambda func: func
    with pytest.raises(ValueError, match="vjp_and_value"):
        diffops.register_backend("incomplete", diffops.AutodiffBackend(module, True))
    with pytest.raises(TypeError):
        diffops.register_backend("tuple", (module, True, None))
    assert "incomplete" not in diffops.registered_backends()


def test_register_a_third_party_backend(isolated_registry):
    require_backend("autograd")
    from diffops import autograd_wrapper

    diffops.register_backend("MyGrad", diffops.AutodiffBackend(autograd_wrapper, True))
    assert "mygrad" in diffops.registered_backends()
    grad, value = diffops.grad_and_value(lambda x: (x**2).sum(), backend="MYGRAD")(
        np.array([1.0, 2.0])
    )
    np.testing.assert_allclose(grad, [2.0, 4.0])
    assert value == 5.0


# ---------------------------------------------------------------------------------
# autodiff_fallback and wrap_function


def hand_written_grad(x):
    return 2 * x, np.sum(x**2)


@pytest.mark.parametrize("backend", [None, *SELECTED_BACKENDS])
@pytest.mark.parametrize("op", diffops.ALL_DIFF_OPS)
def test_autodiff_fallback_returns_given_diff_func(backend, op):
    result = diffops.autodiff_fallback(
        hand_written_grad, np.sum, op, "grad_neg_log_dens", backend
    )
    assert result is hand_written_grad


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_autodiff_fallback_builds_with_backend(backend):
    require_backend(backend)
    from diffops.models import MODELS, reference

    model = MODELS["banana"]
    func, options = model.function(backend)
    assert options == {}  # autodiff_fallback takes no options; none are needed here
    derivative = diffops.autodiff_fallback(
        None, func, "hessian_grad_and_value", "hessian_neg_log_dens", backend
    )
    x = np.array([0.3, -0.7])
    for got, expected in zip(
        derivative(x), reference(model, "hessian_grad_and_value", x), strict=True
    ):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert derivative.op_name == "hessian_grad_and_value"
    assert repr(derivative) == f"hessian_grad_and_value(banana, backend={backend!r})"


def test_wrap_function_none_is_identity():
    assert diffops.wrap_function(np.sum, None) is np.sum


@pytest.mark.parametrize(
    "backend", [b for b in ("autograd", "symnum") if b in SELECTED_BACKENDS]
)
def test_wrap_function_without_wrapper_is_identity(backend):
    require_backend(backend)
    assert diffops.wrap_function(np.sum, backend) is np.sum


def test_wrap_function_jax_jit_compiles_and_returns_numpy(jax_x64_disabled):
    import jax.numpy as jnp

    traces = []

    def f(x):
        traces.append(1)
        return jnp.sin(x), jnp.sum(x)

    wrapped = diffops.wrap_function(f, "jax")
    for k in range(3):
        sin, total = wrapped(np.arange(3.0) + k)
        assert isinstance(sin, np.ndarray)
        assert sin.dtype == np.float64
        assert isinstance(total, np.ndarray | np.generic)
        np.testing.assert_allclose(sin, np.sin(np.arange(3.0) + k), rtol=1e-15)
    assert len(traces) == 1, "wrap_function(f, 'jax') did not jit-compile f"
    sin32, _ = wrapped(np.arange(3.0, dtype=np.float32))
    assert sin32.dtype == np.float32


def test_wrap_function_jax_nojit_returns_numpy_without_compiling():
    require_backend("jax_nojit")
    import jax.numpy as jnp

    calls = []

    def f(x):
        calls.append(type(x).__name__)
        return jnp.cos(x)

    wrapped = diffops.wrap_function(f, "jax_nojit")
    out = wrapped(np.zeros(2))
    wrapped(np.zeros(2))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [1.0, 1.0])
    assert len(calls) == 2, "jax_nojit must not trace/cache the function"


def test_wrap_function_torch_returns_numpy():
    require_backend("torch")
    import torch

    wrapped = diffops.wrap_function(lambda x: torch.sin(x) * 2, "torch")
    out = wrapped(np.array([0.0, np.pi / 2]))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [0.0, 2.0], atol=1e-15)


def test_jit_and_return_numpy_arrays_passes_jit_kwargs():
    require_backend("jax")
    import jax.numpy as jnp

    def repeat_sum(x, n):
        # n must be static: it sets a shape and drives Python control flow.
        total = jnp.zeros(n)
        for _ in range(n):
            total = total + x[:n]
        return total

    wrapped = jax_wrapper.jit_and_return_numpy_arrays(repeat_sum, static_argnums=(1,))
    out = wrapped(np.arange(4.0), 3)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, 3 * np.arange(3.0))
    # Without static_argnums the same function cannot be traced: the kwargs matter.
    unwrapped = jax_wrapper.jit_and_return_numpy_arrays(repeat_sum)
    with pytest.raises(Exception):  # noqa: B017, PT011 - JAX's own tracing error
        unwrapped(np.arange(4.0), 3)

    by_name = jax_wrapper.jit_and_return_numpy_arrays(
        repeat_sum, static_argnames=("n",)
    )
    np.testing.assert_allclose(by_name(np.arange(4.0), n=2), 2 * np.arange(2.0))


def test_return_numpy_arrays_recurses_into_tuples_and_callables():
    require_backend("jax")
    import jax
    import jax.numpy as jnp

    def f(x):
        value, pullback = jax.vjp(jnp.sin, x)
        return value, (jnp.sum(x), jax.tree_util.Partial(lambda v: pullback(v)[0]))

    wrapped = jax_wrapper.return_numpy_arrays(f)
    value, (total, vjp) = wrapped(np.array([0.0, 1.0]))
    assert isinstance(value, np.ndarray)
    assert isinstance(total, np.ndarray | np.generic)
    out = vjp(np.ones(2))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, np.cos([0.0, 1.0]), rtol=1e-15)
    assert out.dtype == np.float64


@pytest.mark.parametrize("op", diffops.ALL_DIFF_OPS)
def test_backend_modules_compose_with_jax_transforms(op):
    # The backend module's operators are framework-level (mici's use): JAX arrays in
    # and out, usable inside jax.jit.
    require_backend("jax")
    import jax
    import jax.numpy as jnp

    from diffops.operators import OPERATORS

    spec = OPERATORS[op]
    func = (lambda x: jnp.sum(x**3)) if spec.scalar_only else (lambda x: x**3)
    raw = getattr(jax_wrapper, op)(func)
    x = jnp.asarray([1.0, 2.0])
    out = jax.jit(raw)(x)
    assert len(out) == spec.n_outputs
    assert isinstance(out[-1], jax.Array)
    np.testing.assert_allclose(out[-1], func(np.array([1.0, 2.0])), rtol=1e-6)


def test_backend_records_and_wrappers():
    from diffops import autograd_wrapper, symnum_wrapper, torch_wrapper

    expected = {
        "jax": (jax_wrapper, jax_wrapper.jit_and_return_numpy_arrays),
        "jax_nojit": (jax_wrapper, jax_wrapper.return_numpy_arrays),
        "autograd": (autograd_wrapper, None),
        "symnum": (symnum_wrapper, None),
        "torch": (torch_wrapper, torch_wrapper.return_numpy_arrays),
    }
    for name, (module, wrapper) in expected.items():
        record = diffops.get_backend(name)
        assert isinstance(record, diffops.AutodiffBackend)
        assert record.module is module
        assert record.function_wrapper is wrapper
        assert isinstance(record.available, bool)


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_concurrent_first_calls(backend):
    # Derivative functions build lazily under a lock and share no mutable state:
    # many threads calling a fresh one at once all get the right answer.
    require_backend(backend)
    from concurrent.futures import ThreadPoolExecutor

    from diffops.models import SHAPED_MODELS, reference

    model = SHAPED_MODELS["log1p_norm"]
    func, options = model.function(backend, (3,))
    derivative = diffops.mtp_hessian_grad_and_value(func, backend=backend, **options)
    points = [np.array([0.1, -0.2, 0.3]) * (k + 1) for k in range(16)]
    m = np.arange(9.0).reshape(3, 3)

    def run(x):
        mtp, hessian, grad, value = derivative(x)
        return mtp(m), hessian, grad, value

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, points))
    for x, got in zip(points, results, strict=True):
        want = reference(model, "mtp_hessian_grad_and_value", x)
        np.testing.assert_allclose(got[0], want[0](m), rtol=1e-10)
        for g, w in zip(got[1:], want[1:], strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-10)


def test_wrapper_modules_have_micis_availability_flags():
    from diffops import autograd_wrapper, symnum_wrapper, torch_wrapper

    for module, flag, name in (
        (jax_wrapper, "JAX_AVAILABLE", "jax"),
        (autograd_wrapper, "AUTOGRAD_AVAILABLE", "autograd"),
        (symnum_wrapper, "SYMNUM_AVAILABLE", "symnum"),
        (torch_wrapper, "TORCH_AVAILABLE", "torch"),
    ):
        assert getattr(module, flag) is diffops.get_backend(name).available
