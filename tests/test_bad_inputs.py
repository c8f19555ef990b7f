"""The bad-input catalogue: every bad input or function gives a clear error.

One table of cases: what is built and called, on which backend, the exception class
expected and words its message must contain. Each case also checks that the input
arrays the user passed are unchanged afterwards. A crash, a hang or a silently wrong
number found anywhere gets a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS, require_backend
from diffops import errors


@dataclass(frozen=True)
class Bad:
    """One catalogue entry.

    ``run(xp, x)`` builds and calls a derivative function with the backend's array
    module ``xp`` on the user's array ``x``; it must raise ``error`` with every
    string of ``words`` in the message.
    """

    id: str
    backend: str
    run: Callable[[Any, np.ndarray], Any]
    error: type[BaseException]
    words: tuple[str, ...]
    x: Callable[[], np.ndarray] = field(default=lambda: np.array([0.3, -0.2, 0.5]))


def _module(backend: str) -> Any:
    if backend in ("jax", "jax_nojit", "jax_codegen"):
        import jax.numpy as jnp

        return jnp
    if backend == "autograd":
        import autograd.numpy as anp

        return anp
    if backend == "torch":
        import torch

        return torch
    import symnum.numpy as snp

    return snp


def _op(name: str, func: Any, backend: str, **options: Any) -> Any:
    return getattr(diffops, name)(func, backend=backend, **options)


TRACING = ("jax", "jax_nojit", "jax_codegen", "autograd", "torch")
CASES: list[Bad] = []

# -- inputs that are not real arrays, on every backend -----------------------------
for b in (*TRACING, "symnum"):
    opts: dict[str, Any] = {"arg_shape": (3,)} if b == "symnum" else {}

    def grad(b: str = b, opts: dict[str, Any] = opts) -> Any:
        return _op("grad_and_value", lambda x: (x**2).sum(), b, **opts)

    CASES += [
        Bad(
            f"complex-{b}",
            b,
            lambda xp, x, g=grad: g()(x + 1j),
            errors.InputTypeError,
            ("complex", "real"),
        ),
        Bad(
            f"str-{b}",
            b,
            lambda xp, x, g=grad: g()("abc"),
            errors.InputTypeError,
            ("not a real number type",),
        ),
        Bad(
            f"none-{b}",
            b,
            lambda xp, x, g=grad: g()(None),
            errors.InputTypeError,
            ("not a real number type",),
        ),
        Bad(
            f"object-{b}",
            b,
            lambda xp, x, g=grad: g()(object()),
            errors.InputTypeError,
            ("not a real number type",),
        ),
        Bad(
            f"ragged-{b}",
            b,
            lambda xp, x, g=grad: g()([[1.0, 2.0], [3.0]]),
            errors.InputTypeError,
            ("could not be converted", "one shape"),
        ),
    ]

# -- functions returning something other than an array ------------------------------
for b in TRACING:
    for returned in (None, (1.0, 2.0), [1.0], "abc", 3.0):
        CASES.append(
            Bad(
                f"returns-{type(returned).__name__}-{b}",
                b,
                lambda xp, x, b=b, r=returned: _op("grad_and_value", lambda y: r, b)(x),
                errors.NonArrayOutputError,
                (type(returned).__name__, "needs it to return one array"),
            )
        )

# -- scalar operators on array functions, closures of the wrong shape ---------------
for b in TRACING:
    CASES += [
        Bad(
            f"nonscalar-{b}",
            b,
            lambda xp, x, b=b: _op("grad_and_value", lambda y: y * 2, b)(x),
            errors.NonScalarOutputError,
            ("(3,)", "jacobian_and_value"),
        ),
        Bad(
            f"length-one-{b}",
            b,
            lambda xp, x, b=b: _op("hessian_grad_and_value", lambda y: y[:1], b)(x),
            errors.NonScalarOutputError,
            ("(1,)",),
        ),
        Bad(
            f"closure-shape-{b}",
            b,
            lambda xp, x, b=b: _op("vjp_and_value", lambda y: y * 2, b)(x)[0](
                np.ones(4)
            ),
            errors.ShapeMismatchError,
            ("(4,)", "(3,)"),
        ),
        Bad(
            f"mtp-shape-{b}",
            b,
            lambda xp, x, b=b: _op(
                "mtp_hessian_grad_and_value", lambda y: (y**3).sum(), b
            )(x)[0](np.ones(3)),
            errors.ShapeMismatchError,
            ("(3,)", "(3, 3)", "Hessian"),
        ),
        Bad(
            f"bad-mode-{b}",
            b,
            lambda xp, x, b=b: _op("jacobian_and_value", lambda y: y, b, mode="up"),
            ValueError,
            ("'up'",),
        )
        if b != "autograd"
        else Bad(
            f"unknown-option-{b}",
            b,
            lambda xp, x, b=b: _op("jacobian_and_value", lambda y: y, b, mode="x"),
            errors.UnknownOptionError,
            ("takes no options",),
        ),
    ]

# -- too large to form: a clear error before allocating (JAX used to abort) ---------
for b in TRACING:
    CASES += [
        Bad(
            f"huge-hessian-{b}",
            b,
            lambda xp, x, b=b: _op(
                "hessian_grad_and_value", lambda y: (xp.sin(y) * y).sum(), b
            )(x),
            errors.OutputTooLargeError,
            ("hessian", "TB", "hvp_grad_and_value"),
            x=lambda: np.ones(10**6),
        ),
        Bad(
            f"huge-mtp-{b}",
            b,
            lambda xp, x, b=b: _op(
                "mtp_hessian_grad_and_value", lambda y: (xp.sin(y) * y).sum(), b
            )(x),
            errors.OutputTooLargeError,
            ("hessian", "TB"),
            x=lambda: np.ones(10**6),
        ),
    ]
CASES.append(
    Bad(
        "huge-jacobian-jax",
        "jax",
        lambda xp, x: _op(
            "jacobian_and_value", lambda y: xp.outer(y, y).ravel(), "jax"
        )(x),
        errors.OutputTooLargeError,
        ("jacobian", "GB", "jvp_and_value"),
        x=lambda: np.ones(3000),
    )
)

# -- a function written for another framework --------------------------------------
CASES += [
    Bad(
        "jnp-on-torch",
        "torch",
        lambda xp, x: _op("grad_and_value", _jnp_sum_sin(), "torch")(x),
        errors.TracingError,
        ("uses jax", "backend='jax'"),
    ),
    Bad(
        "jnp-on-autograd",
        "autograd",
        lambda xp, x: _op("grad_and_value", _jnp_sum_sin(), "autograd")(x),
        errors.TracingError,
        ("uses jax", "backend='jax'"),
    ),
    Bad(
        "torch-on-jax",
        "jax",
        lambda xp, x: _op("grad_and_value", _torch_sum_sin(), "jax")(x),
        errors.TracingError,
        ("uses torch", "backend='torch'"),
    ),
    Bad(
        "torch-on-autograd",
        "autograd",
        lambda xp, x: _op("grad_and_value", _torch_sum_sin(), "autograd")(x),
        errors.TracingError,
        ("uses torch", "backend='torch'"),
    ),
    Bad(
        "numpy-on-symnum",
        "symnum",
        lambda xp, x: _op(
            "grad_and_value", lambda y: np.sum(np.sin(y)), "symnum", arg_shape=(3,)
        )(x),
        errors.TracingError,
        ("symnum.numpy",),
    ),
    Bad(
        "torch-array-on-jax",
        "jax",
        lambda xp, x: _op(
            "grad_and_value", lambda y: (y**2).sum(), "jax", as_numpy=False
        )(_torch_ones()),
        errors.InputTypeError,
        ("torch.Tensor", "another framework"),
    ),
    Bad(
        "jax-array-on-torch",
        "torch",
        lambda xp, x: _op(
            "grad_and_value", lambda y: (y**2).sum(), "torch", as_numpy=False
        )(_jnp_ones()),
        errors.InputTypeError,
        ("another framework",),
    ),
    Bad(
        "requires-grad-tensor",
        "torch",
        lambda xp, x: _op("grad_and_value", lambda y: (y**2).sum(), "torch")(
            _torch_ones(requires_grad=True)
        ),
        errors.InputTypeError,
        ("requires grad", "detach"),
    ),
]

# -- SymNum shapes --------------------------------------------------------------------
CASES += [
    Bad(
        "symnum-no-shape",
        "symnum",
        lambda xp, x: _op("grad_and_value", lambda y: (y**2).sum(), "symnum"),
        errors.MissingArgumentShapeError,
        ("symnum.numpify",),
    ),
    Bad(
        "symnum-negative-shape",
        "symnum",
        lambda xp, x: _op(
            "grad_and_value", lambda y: (y**2).sum(), "symnum", arg_shape=(-1,)
        ),
        errors.MissingArgumentShapeError,
        ("(-1,)", "non-negative"),
    ),
    Bad(
        "symnum-str-shape",
        "symnum",
        lambda xp, x: _op(
            "grad_and_value", lambda y: (y**2).sum(), "symnum", arg_shape="abc"
        ),
        errors.MissingArgumentShapeError,
        ("'abc'", "not a shape"),
    ),
    Bad(
        "symnum-wrong-input-shape",
        "symnum",
        lambda xp, x: _op(
            "grad_and_value", lambda y: (y**2).sum(), "symnum", arg_shape=2
        )(x),
        errors.ShapeMismatchError,
        ("(3,)", "(2,)"),
    ),
]

# -- complex-valued functions, on every backend --------------------------------------
for b in (*TRACING, "symnum"):
    for name in ("grad_and_value", "jacobian_and_value", "vjp_and_value"):
        opts = {"arg_shape": (3,)} if b == "symnum" else {}
        CASES.append(
            Bad(
                f"complex-value-{name}-{b}",
                b,
                lambda xp, x, b=b, n=name, o=opts: _op(
                    n, lambda y: xp.sum(y) * (1 + 1j), b, **o
                )(x),
                errors.ComplexOutputError,
                ("complex", name, "real"),
            )
        )

# -- SymNum: non-array values, derivatives it cannot print, re-entrant builds -------
for returned in ("tuple", "list", "None", "float"):

    def _returning(kind: str) -> Any:
        return {
            "tuple": lambda y: (y[0], y[1]),
            "list": lambda y: [y[0], y[1]],
            "None": lambda y: None,
            "float": lambda y: 1.5,
        }[kind]

    for name in ("grad_and_value", "jacobian_and_value"):
        CASES.append(
            Bad(
                f"symnum-returns-{returned}-{name}",
                "symnum",
                lambda xp, x, r=returned, n=name: _op(
                    n, _returning(r), "symnum", arg_shape=(3,)
                )(x),
                errors.NonArrayOutputError,
                ("needs it to return one array",),
            )
        )


def _reentrant_symnum(xp: Any, x: np.ndarray) -> Any:
    holder: dict[str, Any] = {}

    def f(y: Any) -> Any:
        holder["d"](x)
        return xp.sum(y**2)

    holder["d"] = _op("grad_and_value", f, "symnum", arg_shape=(3,))
    return holder["d"](x)


CASES += [
    Bad(
        "symnum-dirac-delta",
        "symnum",
        lambda xp, x: _op(
            "hessian_grad_and_value",
            lambda y: xp.sum(xp.maximum(y, 0.1) ** 2),
            "symnum",
            arg_shape=(3,),
        )(x),
        errors.CodeGenerationError,
        ("SymNum cannot generate", "DiracDelta", "backend='jax'"),
    ),
    Bad(
        "symnum-reentrant-build",
        "symnum",
        _reentrant_symnum,
        errors.ReentrantBuildError,
        ("calls its own derivative function",),
    ),
]

# -- the registry, operators and the checker ---------------------------------------
CASES += [
    Bad(
        "unknown-backend",
        "jax",
        lambda xp, x: _op("grad_and_value", np.sum, "jaxx"),
        errors.UnknownBackendError,
        ("'jaxx'", "Did you mean 'jax'"),
    ),
    Bad(
        "unknown-operator",
        "jax",
        lambda xp, x: diffops.autodiff_fallback(None, np.sum, "grad", "g", "jax"),
        errors.UnknownOperatorError,
        ("not defined",),
    ),
    Bad(
        "not-callable",
        "jax",
        lambda xp, x: _op("grad_and_value", 3.0, "jax"),
        errors.NotCallableError,
        ("callable",),
    ),
    Bad(
        "no-backend-no-derivative",
        "jax",
        lambda xp, x: diffops.autodiff_fallback(
            None, np.sum, "grad_and_value", "grad_neg_log_dens", None
        ),
        errors.MissingDerivativeError,
        ("grad_neg_log_dens",),
    ),
    Bad(
        "check-op-typo",
        "jax",
        lambda xp, x: diffops.check_derivatives(
            lambda y: (2 * y, (y**2).sum()), x, op_name="grad"
        ),
        ValueError,
        ("'grad'", "not an operator"),
    ),
    Bad(
        "check-not-callable",
        "jax",
        lambda xp, x: diffops.check_derivatives(3, x),
        TypeError,
        ("derivative function", "int"),
    ),
    Bad(
        "check-nan-derivative",
        "jax",
        lambda xp, x: diffops.check_derivatives(
            lambda y: (np.full(3, np.nan), (y**2).sum()), x, op_name="grad_and_value"
        ),
        diffops.DerivativeCheckError,
        ("NaN",),
    ),
]


def _jnp_sum_sin() -> Any:
    import jax.numpy as jnp

    return lambda y: jnp.sum(jnp.sin(y))


def _torch_sum_sin() -> Any:
    import torch

    return lambda y: torch.sum(torch.sin(y))


def _torch_ones(requires_grad: bool = False) -> Any:
    require_backend("torch")
    import torch

    return torch.ones(3, dtype=torch.float64, requires_grad=requires_grad)


def _jnp_ones() -> Any:
    require_backend("jax")
    import jax.numpy as jnp

    return jnp.ones(3)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.id) for c in CASES if c.backend in SELECTED_BACKENDS],
)
def test_bad_input_gives_clear_error(case: Bad):
    require_backend(case.backend)
    x = case.x()
    before = x.copy()
    with pytest.raises(case.error) as info:
        case.run(_module(case.backend), x)
    message = str(info.value)
    for word in case.words:
        assert word in message, f"{word!r} not in message: {message}"
    np.testing.assert_array_equal(x, before)


def test_catalogue_covers_every_backend():
    assert {c.backend for c in CASES} == set(diffops.registered_backends())


# -- silently wrong numbers once found: no error to give, the result must be right --
@pytest.mark.parametrize("backend", ["jax", "autograd", "torch"])
@pytest.mark.parametrize("op", ["hessian_grad_and_value", "jacobian_and_value"])
def test_sparse_results_changed_in_place_leave_later_calls_right(backend, op):
    """A returned CSR array shared its index arrays with the plan's pattern: after
    ``H.eliminate_zeros()`` the next call's matrix had 10 entries instead of 16
    (off by 30 against the dense Hessian)."""
    require_backend(backend)
    xp = _module(backend)

    def func(x: Any) -> Any:
        chain = x[1:] * x[:-1]
        return xp.sum(chain) + xp.sum(x**3) if op.startswith("hessian") else chain

    n = 6
    hessian = (
        np.eye(n, dtype=bool) | np.eye(n, k=1, dtype=bool) | np.eye(n, k=-1, dtype=bool)
    )
    jacobian = np.eye(n - 1, n, dtype=bool) | np.eye(n - 1, n, k=1, dtype=bool)
    pattern = hessian if op.startswith("hessian") else jacobian
    sparsity = "detect" if backend == "jax" else pattern
    sparse_d = _op(op, func, backend, sparsity=sparsity)
    dense_d = _op(op, func, backend)
    first = sparse_d(np.zeros(6))[0]  # the diagonal is zero here
    first.eliminate_zeros()
    first.indices[:] = 0
    x = np.linspace(-1.0, 2.0, 6)
    np.testing.assert_allclose(sparse_d(x)[0].toarray(), dense_d(x)[0], atol=1e-12)


@pytest.mark.parametrize("op", ["hessian_grad_and_value", "jacobian_and_value"])
def test_sparse_results_of_dense_and_gathered_plans_are_writable(op):
    """A matrix whose values come straight from a compiled program's buffer (a full
    pattern, or non-zeros gathered inside the program) was read-only: SciPy's
    in-place methods raised ``ValueError: ... read-only``."""
    require_backend("jax")
    import jax.numpy as jnp

    def func(x: Any) -> Any:
        full = jnp.sum(x) ** 2 if op.startswith("hessian") else jnp.sum(x) * x
        return full

    d = _op(op, func, "jax", sparsity="detect")
    matrix = d(np.zeros(4))[0]
    assert d.coloring["mode"] == "dense"
    assert matrix.data.flags.writeable
    matrix.eliminate_zeros()  # every entry is zero at 0
    matrix.data[:] = 1.0
    x = np.linspace(-1.0, 2.0, 4)
    np.testing.assert_allclose(d(x)[0].toarray(), _op(op, func, "jax")(x)[0])
