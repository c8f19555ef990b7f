"""Derivative functions pickle (by reference, or by value through cloudpickle)."""

from __future__ import annotations

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
    assert clone.func is MODULE_LEVEL[backend]
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
