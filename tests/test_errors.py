"""The DESIGN.md error list: each error, its class and its message."""

from __future__ import annotations

import re
import types

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, installed_selected_backends, require_backend
from diffops import errors
from diffops.models import MODELS, SHAPED_MODELS, reference
from diffops.operators import OPERATORS

SCALAR_OPS = tuple(op for op in diffops.ALL_DIFF_OPS if OPERATORS[op].scalar_only)
TRACING_BACKENDS = [
    b
    for b in ("jax", "jax_nojit", "jax_codegen", "autograd", "torch")
    if b in SELECTED_BACKENDS
]


def plain_function(x):
    return x[0] ** 2


# ---------------------------------------------------------------------------------
# A scalar operator on a non-scalar function


NON_SCALAR = {
    "F=(1,)": (MODELS["torus"], (3,), np.array([0.6, 0.8, 0.1])),
    "F=(2,)": (SHAPED_MODELS["sq_sin"], (3,), np.array([0.1, 0.2, 0.3])),
}


def non_scalar_error(backend: str, op: str, key: str) -> errors.NonScalarOutputError:
    model, shape, x = NON_SCALAR[key]
    func, options = model.function(backend, shape)
    derivative = diffops.DerivativeFunction(func, op, backend, **options)
    with pytest.raises(errors.NonScalarOutputError) as info:
        derivative(x)
    assert isinstance(info.value, ValueError)
    return info.value


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("op", SCALAR_OPS)
@pytest.mark.parametrize("key", list(NON_SCALAR))
def test_scalar_operator_on_non_scalar_function(backend, op, key):
    require_backend(backend)
    message = str(non_scalar_error(backend, op, key))
    f_shape = key.removeprefix("F=")
    assert op in message
    assert f_shape in message, message
    assert "jacobian_and_value" in message
    assert "vjp_and_value" in message


@pytest.mark.parametrize("op", SCALAR_OPS)
@pytest.mark.parametrize("key", list(NON_SCALAR))
def test_non_scalar_error_is_the_same_on_every_backend(op, key):
    messages = {
        b: str(non_scalar_error(b, op, key)) for b in installed_selected_backends()
    }
    assert len(set(messages.values())) == 1, messages


# ---------------------------------------------------------------------------------
# Unknown and unavailable backends


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("jaxx", "jax"), ("torhc", "torch"), ("autgrad", "autograd")],
)
def test_unknown_backend_lists_names_and_closest_match(typo, suggestion):
    with pytest.raises(errors.UnknownBackendError) as info:
        diffops.grad_and_value(plain_function, backend=typo)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert repr(typo) in message
    for name in diffops.registered_backends():
        assert repr(name) in message, message
    assert f"Did you mean {suggestion!r}?" in message


@pytest.mark.parametrize(
    "call",
    [
        lambda: diffops.get_backend("nope"),
        lambda: diffops.wrap_function(plain_function, "nope"),
        lambda: diffops.autodiff_fallback(
            None, plain_function, "grad_and_value", "grad", "nope"
        ),
        lambda: diffops.DerivativeFunction(plain_function, "grad_and_value", "nope"),
    ],
    ids=["get_backend", "wrap_function", "autodiff_fallback", "DerivativeFunction"],
)
def test_unknown_backend_everywhere(call):
    with pytest.raises(ValueError, match="valid names"):
        call()


def test_backend_must_be_a_string():
    with pytest.raises(ValueError, match="string"):
        diffops.get_backend(None)


def _fake_module(name: str = "fake_framework_backend", extra: str | None = "fakeextra"):
    module = types.ModuleType(name)
    for op in diffops.DIFF_OPS:
        setattr(module, op, lambda func, **options: func)
    if extra is not None:
        module.EXTRA = extra
    return module


@pytest.mark.parametrize(
    "call",
    [
        lambda: diffops.grad_and_value(plain_function, backend="fake"),
        lambda: diffops.wrap_function(plain_function, "Fake"),
        lambda: diffops.autodiff_fallback(
            None, plain_function, "grad_and_value", "grad", "fake"
        ),
    ],
    ids=["shortcut", "wrap_function", "autodiff_fallback"],
)
def test_backend_not_installed_names_the_extra(isolated_registry, call):
    diffops.register_backend("fake", diffops.AutodiffBackend(_fake_module(), False))
    assert "fake" in diffops.registered_backends()
    assert "fake" not in diffops.available_backends()
    with pytest.raises(errors.BackendUnavailableError) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert "pip install diffops[fakeextra]" in str(info.value)


def test_backend_not_installed_default_extra_is_the_name(isolated_registry):
    diffops.register_backend(
        "Other", diffops.AutodiffBackend(_fake_module(extra=None), False)
    )
    with pytest.raises(ValueError, match=re.escape("pip install diffops[other]")):
        diffops.jacobian_and_value(plain_function, backend="other")


def test_registry_is_restored_after_fake_backends():
    assert "fake" not in diffops.registered_backends()
    assert "other" not in diffops.registered_backends()


# ---------------------------------------------------------------------------------
# autodiff_fallback, operators, functions


def test_backend_none_without_derivative_names_the_function():
    with pytest.raises(errors.MissingDerivativeError) as info:
        diffops.autodiff_fallback(
            None, plain_function, "grad_and_value", "grad_neg_log_dens", None
        )
    assert isinstance(info.value, ValueError)
    assert "None" in str(info.value)
    assert "grad_neg_log_dens" in str(info.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda b: diffops.autodiff_fallback(
            None, plain_function, "gradient_and_value", "g", b
        ),
        lambda b: diffops.DerivativeFunction(plain_function, "gradient_and_value", b),
    ],
    ids=["autodiff_fallback", "DerivativeFunction"],
)
@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_unknown_operator(call, backend):
    with pytest.raises(errors.UnknownOperatorError) as info:
        call(backend)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "not defined" in message
    assert "gradient_and_value" in message
    for op in diffops.ALL_DIFF_OPS:
        assert op in message


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("op", diffops.ALL_DIFF_OPS)
@pytest.mark.parametrize(
    "func", [3.0, np.ones(3), "f", None], ids=["float", "array", "str", "None"]
)
def test_non_callable_function_is_a_type_error(backend, op, func):
    with pytest.raises(TypeError) as info:
        getattr(diffops, op)(func, backend=backend)
    assert isinstance(info.value, errors.NotCallableError)
    assert op in str(info.value)
    with pytest.raises(TypeError):
        diffops.autodiff_fallback(None, func, op, "name", backend)


@pytest.mark.parametrize("op", diffops.ALL_DIFF_OPS)
def test_symnum_function_without_shapes(op):
    require_backend("symnum")

    def symbolic(x):
        return x[0] ** 2

    # Raised when the derivative function is built, not at the first call.
    with pytest.raises(errors.MissingArgumentShapeError) as info:
        getattr(diffops, op)(symbolic, backend="symnum")
    assert isinstance(info.value, ValueError)
    assert "symnum.numpify" in str(info.value)
    assert "symbolic" in str(info.value)


def test_symnum_arg_shape_option_replaces_numpify():
    require_backend("symnum")
    import symnum.numpy as snp

    def cubes(x):
        return snp.sum(x**3)

    derivative = diffops.grad_and_value(cubes, backend="symnum", arg_shape=(2,))
    grad, value = derivative(np.array([1.0, 2.0]))
    np.testing.assert_allclose(grad, [3.0, 12.0])
    assert value == 9.0


@pytest.mark.parametrize("decorated", [True, False], ids=["numpify", "arg_shape"])
def test_symnum_accepts_lambdas(decorated):
    # Lambdas are ordinary user functions; their name '<lambda>' is not an identifier,
    # so it must not end up in the name of the generated code.
    require_backend("symnum")
    import symnum
    import symnum.numpy as snp

    func = lambda x: snp.sum(x**3)  # noqa: E731
    if decorated:
        derivative = diffops.grad_and_value(
            symnum.numpify((2,))(func), backend="symnum"
        )
    else:
        derivative = diffops.grad_and_value(func, backend="symnum", arg_shape=(2,))
    grad, value = derivative(np.array([1.0, 2.0]))
    np.testing.assert_allclose(grad, [3.0, 12.0])
    assert value == 9.0


def test_symnum_wrong_input_shape_names_both_shapes():
    require_backend("symnum")
    func, options = MODELS["banana"].function("symnum")
    derivative = diffops.grad_and_value(func, backend="symnum", **options)
    with pytest.raises(errors.ShapeMismatchError) as info:
        derivative(np.ones(3))
    assert isinstance(info.value, ValueError)
    assert "(3,)" in str(info.value)
    assert "(2,)" in str(info.value)


# ---------------------------------------------------------------------------------
# Plain NumPy handed to a tracing backend


def numpy_ufunc(x):
    return np.sum(np.sin(x))


def numpy_reduction(x):
    return np.sum(x**2)


def numpy_setitem(x):
    # Writing a traced value into a NumPy array: classic plain-NumPy code (the rest
    # uses only methods and operators, which every framework supports).
    z = np.zeros(3)
    z[0] = x[0]
    return z.sum() + (x**2).sum()


PLAIN_NUMPY = {
    "ufunc": (numpy_ufunc, lambda x: (np.cos(x), np.sum(np.sin(x)))),
    "reduction": (numpy_reduction, lambda x: (2 * x, np.sum(x**2))),
    "setitem": (
        numpy_setitem,
        lambda x: (2 * x + np.array([1.0, 0.0, 0.0]), x[0] + np.sum(x**2)),
    ),
}
HINTS = {
    "jax": "jax.numpy",
    "jax_nojit": "jax.numpy",
    "jax_codegen": "jax.numpy",
    "autograd": "autograd.numpy",
    "torch": "torch.",
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("backend", TRACING_BACKENDS)
@pytest.mark.parametrize("name", list(PLAIN_NUMPY))
def test_plain_numpy_function_gives_tracing_error_or_right_answer(backend, name):
    # DESIGN.md: the framework's tracing error is re-raised with a hint. Where the
    # framework does handle the NumPy call (Autograd dispatches NumPy ufuncs), the
    # result must then be right: never a silently wrong derivative, never a bare
    # framework error without the hint.
    require_backend(backend)
    func, closed_form = PLAIN_NUMPY[name]
    x = np.array([0.3, -0.2, 0.5])
    derivative = diffops.grad_and_value(func, backend=backend)
    try:
        grad, value = derivative(x)
    except errors.TracingError as err:
        message = str(err)
        assert HINTS[backend] in message, message
        assert func.__name__ in message, message
        return
    except Exception as err:
        pytest.fail(
            f"{name} on {backend} raised {type(err).__name__}: {err} -- expected "
            f"diffops.errors.TracingError with a hint to use {HINTS[backend]}"
        )
    expected_grad, expected_value = closed_form(x)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    np.testing.assert_allclose(
        grad,
        expected_grad,
        rtol=1e-10,
        err_msg=f"silently wrong gradient of {name} on {backend}",
    )


@pytest.mark.parametrize("backend", [b for b in TRACING_BACKENDS if b != "autograd"])
def test_plain_numpy_ufunc_is_a_tracing_error(backend):
    require_backend(backend)
    with pytest.raises(errors.TracingError, match=re.escape(HINTS[backend])):
        diffops.grad_and_value(numpy_ufunc, backend=backend)(np.ones(3))


def test_autograd_python_float_is_a_tracing_error():
    require_backend("autograd")
    with pytest.raises(errors.TracingError, match=r"autograd\.numpy"):
        diffops.grad_and_value(lambda x: float(x[0]) ** 2, backend="autograd")(
            np.ones(3)
        )


def test_errors_subclass_the_promised_builtins():
    assert issubclass(errors.UnknownBackendError, ValueError)
    assert issubclass(errors.BackendUnavailableError, ValueError)
    assert issubclass(errors.MissingDerivativeError, ValueError)
    assert issubclass(errors.UnknownOperatorError, ValueError)
    assert issubclass(errors.NonScalarOutputError, ValueError)
    assert issubclass(errors.ShapeMismatchError, ValueError)
    assert issubclass(errors.MissingArgumentShapeError, ValueError)
    assert issubclass(errors.InputTypeError, TypeError)
    assert issubclass(errors.NotCallableError, TypeError)
    assert issubclass(errors.TracingError, TypeError)


@pytest.mark.parametrize(
    "backend", [b for b in ("jax", "torch") if b in SELECTED_BACKENDS]
)
def test_bad_jacobian_mode(backend):
    require_backend(backend)
    func, _ = MODELS["linear"].function(backend)
    with pytest.raises(ValueError, match="sideways"):
        diffops.jacobian_and_value(func, backend=backend, mode="sideways")(np.ones(4))


@pytest.mark.parametrize(
    "backend", [b for b in ("jax", "torch") if b in SELECTED_BACKENDS]
)
@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
def test_jacobian_modes_agree(backend, mode):
    require_backend(backend)
    model = MODELS["linear"]
    func, _ = model.function(backend)
    x = np.array([0.1, -0.4, 2.0, 1.0])
    jac, value = diffops.jacobian_and_value(func, backend=backend, mode=mode)(x)
    expected_jac, expected_value = reference(model, "jacobian_and_value", x)
    np.testing.assert_allclose(jac, expected_jac, rtol=1e-12)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)


@pytest.mark.parametrize(
    ("backend", "options"),
    [("autograd", {"mode": "forward"}), ("symnum", {"mode": "forward"})],
)
def test_unknown_options_rejected_when_built(backend, options):
    require_backend(backend)

    def f(x):
        return x[0] ** 2 + x[1]

    if backend == "symnum":
        import symnum

        f = symnum.numpify((2,))(f)
    with pytest.raises(TypeError, match="mode"):
        diffops.jacobian_and_value(f, backend=backend, **options)
