"""Derivative functions pickle (by reference, or by value through cloudpickle)."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from diffops.models import MODELS


# Module-level functions, one per framework, importing the framework lazily so this
# module imports without any of them.
def jax_potential(x):
    import jax.numpy as jnp

    return jnp.sum(jnp.sin(x) * x**2)


def autograd_potential(x):
    import autograd.numpy as anp

    return anp.sum(anp.sin(x) * x**2)


def symnum_potential(x):
    import symnum.numpy as snp

    return snp.sum(snp.sin(x) * x**2)


def torch_potential(x):
    import torch

    return torch.sum(torch.sin(x) * x**2)


MODULE_LEVEL = {
    "jax": jax_potential,
    "jax_nojit": jax_potential,
    "jax_codegen": jax_potential,
    "autograd": autograd_potential,
    "symnum": symnum_potential,
    "torch": torch_potential,
}


def _options(backend):
    return {"arg_shape": (3,)} if backend == "symnum" else {}


def _assert_same_results(a, b, x):
    out_a, out_b = a(x), b(x)
    assert len(out_a) == len(out_b)
    for p, q in zip(out_a, out_b, strict=True):
        if callable(p):
            m = np.ones(p.arg_shape)
            p, q = p(m), q(m)
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("backend", [b for b in SELECTED_BACKENDS if b in MODULE_LEVEL])
@pytest.mark.parametrize(
    "op", ["grad_and_value", "mtp_hessian_grad_and_value", "vjp_and_value"]
)
@pytest.mark.parametrize("called_first", [False, True], ids=["fresh", "built"])
def test_module_level_function_round_trip(backend, op, called_first):
    require_backend(backend)
    derivative = getattr(diffops, op)(
        MODULE_LEVEL[backend], backend=backend, **_options(backend)
    )
    x = np.array([0.3, -1.2, 0.8])
    if called_first:
        derivative(x)  # pickling a built (compiled) derivative function works too
    data = pickle.dumps(derivative)
    assert b"cloudpickle" not in data  # stored by reference
    clone = pickle.loads(data)
    assert type(clone) is type(derivative)
    assert repr(clone) == repr(derivative)
    assert clone.__name__ == derivative.__name__
    func = clone.func
    if backend == "jax_codegen":  # shipped as bytes, unpickled when it is traced
        func = func.function
    assert func is MODULE_LEVEL[backend]
    _assert_same_results(derivative, clone, x)
    expected_grad = np.cos(x) * x**2 + 2 * x * np.sin(x)
    if op != "vjp_and_value":
        np.testing.assert_allclose(clone(x)[-2], expected_grad, rtol=1e-12)


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_lambda_round_trip(backend):
    require_backend(backend)
    pytest.importorskip("cloudpickle")  # the documented optional dependency
    if backend == "symnum":
        # A local function (pickled by value too); SymNum's trouble with the name
        # '<lambda>' is tested in test_errors.py::test_symnum_accepts_lambdas.
        import symnum.numpy as snp

        def cubes(x):
            return snp.sum(x**3)

        derivative = diffops.DerivativeFunction(
            cubes, "hessian_grad_and_value", backend, arg_shape=(2,)
        )
    else:
        inner = MODULE_LEVEL[backend]
        func = lambda x: inner(x) * 2  # noqa: E731
        derivative = diffops.hessian_grad_and_value(func, backend=backend)
    clone = pickle.loads(pickle.dumps(derivative))
    assert repr(clone) == repr(derivative)
    _assert_same_results(derivative, clone, np.array([0.4, -0.6]))


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_model_function_round_trip(backend):
    # Local closures from models.py (not importable by reference).
    require_backend(backend)
    func, options = MODELS["torus"].function(backend)
    derivative = diffops.mhp_jacobian_and_value(func, backend=backend, **options)
    clone = pickle.loads(pickle.dumps(derivative))
    _assert_same_results(derivative, clone, np.array([0.9, 0.3, -0.2]))


def test_pickle_all_protocols():
    require_backend("autograd")
    derivative = diffops.grad_and_value(autograd_potential, backend="autograd")
    x = np.array([1.0, 2.0, 3.0])
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        clone = pickle.loads(pickle.dumps(derivative, protocol=protocol))
        _assert_same_results(derivative, clone, x)


def test_function_using_imported_autograd_functions_round_trip():
    # The everyday script pattern `from autograd.numpy import sin, sum` followed by a
    # lambda: the lambda goes through cloudpickle together with those functions.
    require_backend("autograd")
    from autograd.numpy import sin
    from autograd.numpy import sum as asum

    derivative = diffops.grad_and_value(lambda x: asum(sin(x)), backend="autograd")
    clone = pickle.loads(pickle.dumps(derivative))
    x = np.array([0.5, 1.0])
    grad, value = clone(x)
    np.testing.assert_allclose(grad, np.cos(x), rtol=1e-14)
    np.testing.assert_allclose(value, np.sum(np.sin(x)), rtol=1e-14)


# ---------------------------------------------------------------------------------
# SymNum functions in fresh processes, generated code shipped, copies shared


def _spawn_results(derivative, x):
    import multiprocessing

    import _spawn_models

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply_async(_spawn_models.evaluate, (derivative, x)).get(
            timeout=120
        )


@pytest.mark.parametrize("name", ["banana3_sym", "lambda_sym"])
@pytest.mark.parametrize("op", ["hessian_grad_and_value", "mtp_hessian_grad_and_value"])
def test_numpified_symnum_derivatives_work_in_a_spawn_pool(name, op):
    require_backend("symnum")
    import _spawn_models

    derivative = getattr(diffops, op)(getattr(_spawn_models, name), backend="symnum")
    x = np.array([0.3, -0.2, 0.5])
    expected = _spawn_models.evaluate(derivative, x)  # built in the parent
    got = _spawn_results(derivative, x)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_unbuilt_numpified_symnum_derivative_works_in_a_spawn_pool():
    require_backend("symnum")
    import _spawn_models

    derivative = diffops.grad_and_value(_spawn_models.banana3_sym, backend="symnum")
    got = _spawn_results(derivative, np.array([0.3, -0.2, 0.5]))
    expected = _spawn_models.evaluate(derivative, np.array([0.3, -0.2, 0.5]))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("op", ["grad_and_value", "mhp_jacobian_and_value"])
def test_pickled_symnum_derivative_does_not_run_sympy_again(op, monkeypatch):
    require_backend("symnum")
    from diffops.backends import symnum as symnum_backend

    model = MODELS["torus"] if op == "mhp_jacobian_and_value" else MODELS["banana"]
    func, options = model.function("symnum")
    derivative = getattr(diffops, op)(func, backend="symnum", **options)
    x = model.sample(np.random.default_rng(0), model.shape)
    expected = derivative(x)
    data = pickle.dumps(derivative)

    def no_sympy(*args, **kwargs):
        raise AssertionError("SymPy code generation ran again after unpickling")

    monkeypatch.setattr(symnum_backend, "_generate", no_sympy)
    restored = pickle.loads(data)
    got = restored(x)
    for g, e in zip(got, expected, strict=True):
        if callable(g):
            m = np.ones(g.arg_shape)
            g, e = g(m), e(m)
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_copies_share_the_built_program(backend):
    import copy

    require_backend(backend)
    func, options = MODELS["banana"].function(backend)
    derivative = diffops.hessian_grad_and_value(func, backend=backend, **options)
    derivative(np.array([0.3, 0.5]))
    assert copy.copy(derivative) is derivative
    assert copy.deepcopy(derivative) is derivative
    assert copy.deepcopy({"f": derivative})["f"] is derivative


def test_deep_copies_compile_nothing_new(jax_compiles):
    import copy

    func, _ = MODELS["torus"].function("jax")
    derivative = diffops.mhp_jacobian_and_value(func)
    x = np.array([1.5, 0.0, 0.0])
    derivative(x)
    before = jax_compiles.count
    for _ in range(3):
        copy.deepcopy(derivative)(x)
    assert jax_compiles.count == before


# ---------------------------------------------------------------------------------
# Every object diffops returns pickles and survives copy.deepcopy


def _functions(backend):
    """A scalar and a vector function for ``backend``, pickled by value."""
    if backend == "symnum":
        import symnum
        import symnum.numpy as snp

        @symnum.numpify(2)
        def scalar(x):
            return snp.sum(snp.sin(x) * x**3)

        @symnum.numpify(2)
        def vector(x):
            return snp.array([x[0] ** 2 * x[1], snp.sin(x[0]), x[1] ** 3])

        return scalar, vector
    if backend == "torch":
        import torch as xp
    elif backend == "autograd":
        import autograd.numpy as xp
    else:
        import jax.numpy as xp
    scalar = lambda x: xp.sum(xp.sin(x) * x**3)  # noqa: E731
    vector = lambda x: xp.stack([x[0] ** 2 * x[1], xp.sin(x[0]), x[1] ** 3])  # noqa: E731
    return scalar, vector


_VECTOR_OPS = ("vjp_and_value", "jacobian_and_value", "mhp_jacobian_and_value")


def _returned_objects(backend):
    """(label, object, call) for everything diffops returns on ``backend``."""
    scalar, vector = _functions(backend)
    x = np.array([0.4, -1.3])
    xs = np.array([[0.4, -1.3], [1.1, 0.2], [-0.5, 0.7]])
    objects = []
    for op in diffops.ALL_DIFF_OPS:
        func = vector if op in (*_VECTOR_OPS, "jvp_and_value") else scalar
        derivative = getattr(diffops, op)(func, backend=backend)
        objects.append((op, derivative, lambda d: d(x)))
        batched = diffops.batched(derivative)
        objects.append((f"batched {op}", batched, lambda d: d(xs)))
        closure = derivative(x)[0]
        if callable(closure):
            m = np.linspace(-1, 1, math.prod(closure.arg_shape))
            m = m.reshape(closure.arg_shape)
            objects.append((f"{op} closure", closure, lambda c, m=m: c(m)))
            batched_closure = batched(xs)[0]
            mb = np.linspace(-1, 1, math.prod(batched_closure.arg_shape))
            mb = mb.reshape(batched_closure.arg_shape)
            objects.append(
                (f"batched {op} closure", batched_closure, lambda c, m=mb: c(m))
            )
    if backend in ("jax", "jax_nojit", "jax_codegen", "torch"):
        wrapped = diffops.wrap_function(vector, backend)
        objects.append(("wrap_function", wrapped, lambda w: w(x)))
    return objects


def _outputs(value):
    if isinstance(value, tuple):
        return [o for v in value for o in _outputs(v)]
    if callable(value):
        return []  # closures are checked on their own
    return [np.asarray(value)]


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_every_returned_object_pickles_and_deep_copies(backend):
    require_backend(backend)
    pytest.importorskip("cloudpickle")
    objects = _returned_objects(backend)
    assert len(objects) >= 8 * 2 + 5 * 2
    for label, obj, call in objects:
        expected = _outputs(call(obj))
        assert expected, label
        for how, copy_of in (
            ("deepcopy", copy.deepcopy),
            ("pickle", lambda o: pickle.loads(pickle.dumps(o))),
        ):
            clone = copy_of(obj)
            assert type(clone) is type(obj), (label, how)
            assert repr(clone) == repr(obj), (label, how)
            got = _outputs(call(clone))
            for g, e in zip(got, expected, strict=True):
                np.testing.assert_array_equal(g, e, err_msg=f"{label} ({how})")


@pytest.mark.parametrize(
    "backend", [b for b in ("jax", "torch") if b in SELECTED_BACKENDS]
)
def test_framework_array_closures_pickle(backend):
    require_backend(backend)
    scalar, _ = _functions(backend)
    derivative = diffops.mtp_hessian_grad_and_value(
        scalar, backend=backend, as_numpy=False
    )
    backend_object = diffops.registry.backend(backend)
    x = backend_object.to_framework(np.array([0.4, -1.3]))
    mtp = derivative(x)[0]
    m = backend_object.to_framework(np.array([[1.0, 2.0], [-0.5, 0.3]]))
    expected = np.asarray(mtp(m))
    for clone in (copy.deepcopy(mtp), pickle.loads(pickle.dumps(mtp))):
        got = clone(m)
        assert backend_object.is_framework_array(got)
        np.testing.assert_array_equal(np.asarray(got), expected)


def test_sparse_closures_pickle():
    require_backend("jax")
    _, vector = _functions("jax")
    derivative = diffops.mhp_jacobian_and_value(vector, sparsity="detect")
    mhp, _, _ = derivative(np.array([0.4, -1.3]))
    m = np.arange(6.0).reshape(3, 2)
    clone = pickle.loads(pickle.dumps(mhp))
    np.testing.assert_array_equal(clone(m), mhp(m))
    np.testing.assert_array_equal(copy.deepcopy(mhp)(m), mhp(m))


def test_closure_recipe_keeps_its_own_copy_of_the_input():
    require_backend("autograd")
    scalar, _ = _functions("autograd")
    x = np.array([0.4, -1.3])
    args_data = np.array([2.0])
    derivative = diffops.hvp_grad_and_value(
        lambda y, a: scalar(y) * a[0], backend="autograd"
    )
    hvp = derivative(x, args_data)[0]
    v = np.array([1.0, -1.0])
    expected = hvp(v)
    x[:] = 9.0  # the caller changes its arrays after the call
    args_data[:] = 9.0
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(hvp))(v), expected)


def test_a_closure_not_made_by_a_derivative_function_refuses_to_pickle_clearly():
    from diffops.boundary import ProductClosure
    from diffops.operators import OPERATORS

    require_backend("autograd")
    backend = diffops.registry.backend("autograd")
    spec = OPERATORS["vjp_and_value"].closure
    closure = ProductClosure(backend, lambda v: v, spec, (2,), (2,), np.dtype(float))
    with pytest.raises(pickle.PicklingError, match="derivative function"):
        pickle.dumps(closure)


def test_jit_wrapped_functions_pickle_with_their_jit_options():
    require_backend("jax")
    clone = pickle.loads(
        pickle.dumps(
            jax_wrapper_module().jit_and_return_numpy_arrays(
                _spawn_models_repeat_sum, static_argnums=(1,)
            )
        )
    )
    np.testing.assert_array_equal(clone(np.arange(4.0), 3), 3 * np.arange(3.0))


def test_callables_returned_by_wrapped_functions_pickle():
    require_backend("jax")
    import jax
    import jax.numpy as jnp

    def with_vjp(x):
        value, pullback = jax.vjp(jnp.sin, x)
        return value, jax.tree_util.Partial(lambda v: pullback(v)[0])

    wrapped = jax_wrapper_module().return_numpy_arrays(with_vjp)
    x = np.array([0.0, 1.0])
    _, vjp = wrapped(x)
    expected = vjp(np.ones(2))
    x[:] = 5.0  # the recipe kept its own copy
    for clone in (pickle.loads(pickle.dumps(vjp)), copy.deepcopy(vjp)):
        np.testing.assert_array_equal(clone(np.ones(2)), expected)
    np.testing.assert_allclose(expected, np.cos([0.0, 1.0]), rtol=1e-15)


def jax_wrapper_module():
    from diffops import jax_wrapper

    return jax_wrapper


def _spawn_models_repeat_sum(x, n):
    import jax.numpy as jnp

    total = jnp.zeros(n)
    for _ in range(n):
        total = total + x[:n]
    return total
