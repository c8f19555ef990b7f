"""Example models with closed-form derivatives, written once for every framework.

Each :class:`Model` describes a function generically over a small namespace of array
operations (:func:`namespace`), so the same formula runs on JAX, Autograd, SymNum and
PyTorch, together with hand-derived NumPy derivatives that serve as the reference in
the demo, the tests and the benchmarks. For a scalar model ``third`` is the Tressian
``t[i, j, k] = ∂³f/(∂x[i] ∂x[j] ∂x[k])``; for an array model it is the vector Hessian
``h[i, j, k] = ∂²f[i]/(∂x[j] ∂x[k])`` (N-d shapes flatten in C order).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

Array = np.ndarray


def namespace(backend: str) -> SimpleNamespace:
    """Array operations for writing one model formula for every framework.

    Args:
        backend: Backend name; the backend supplies the namespace.

    Returns:
        Namespace with ``sqrt, sin, cos, exp, log, log1p, sum, stack`` and
        ``const(array, like)`` (a constant array in the framework's type and the
        dtype of ``like``).
    """
    from diffops.backends.capabilities import namespace_of
    from diffops.registry import backend as lookup

    return namespace_of(lookup(backend))


@dataclass(frozen=True)
class Model:
    """A test/demo function with closed-form derivatives.

    Attributes:
        name: Short name, e.g. ``"banana"``.
        description: One line for tables.
        shape: Default input shape ``S``.
        scalar: Whether the function is scalar-valued.
        formula: ``formula(ns)`` returns the function written with namespace ``ns``.
        value: NumPy closed form of ``f(x)``.
        first: Gradient (shape ``S``) or Jacobian (shape ``F + S``).
        second: Hessian (``S + S``) or vector Hessian (``F + S + S``).
        third: Tressian (``S + S + S``); ``None`` for array-valued models.
        sample: ``sample(rng, shape)`` draws a test point.
        skip: Backends the model is not run on, with the reason.
    """

    name: str
    description: str
    shape: tuple[int, ...]
    scalar: bool
    formula: Callable[[SimpleNamespace], Callable[[Any], Any]]
    value: Callable[[Array], Array]
    first: Callable[[Array], Array]
    second: Callable[[Array], Array]
    third: Callable[[Array], Array] | None = None
    sample: Callable[[np.random.Generator, tuple[int, ...]], Array] = field(
        default=lambda rng, shape: rng.uniform(-1.0, 1.0, size=shape)
    )
    skip: dict[str, str] = field(default_factory=dict)

    def function(
        self, backend: str, shape: tuple[int, ...] | None = None
    ) -> tuple[Callable[[Any], Any], dict[str, Any]]:
        """The model written for ``backend``, with the options its operators need.

        Args:
            backend: Backend name.
            shape: Input shape (default :attr:`shape`); SymNum needs it up front.

        Returns:
            ``(func, options)``: the function and keyword options for the operator
            (``arg_shape`` for SymNum at 0-d shape, else empty).
        """
        shape = self.shape if shape is None else shape
        func = self.formula(namespace(backend))
        func.__name__ = func.__qualname__ = self.name
        if backend != "symnum":
            return func, {}
        if shape == ():
            return func, {"arg_shape": ()}
        import symnum

        return symnum.numpify(shape)(func), {}


# ---------------------------------------------------------------------------------
# banana: a 2-d log-density with a curved ridge


def _banana(ns: SimpleNamespace) -> Callable[[Any], Any]:
    def banana(x: Any) -> Any:
        return -(x[0] ** 2) / 2 - (x[1] - x[0] ** 2) ** 2

    return banana


def _banana_value(x: Array) -> Array:
    return -(x[0] ** 2) / 2 - (x[1] - x[0] ** 2) ** 2


def _banana_grad(x: Array) -> Array:
    u = x[1] - x[0] ** 2
    return np.array([-x[0] + 4 * x[0] * u, -2 * u])


def _banana_hessian(x: Array) -> Array:
    u = x[1] - x[0] ** 2
    return np.array([[-1 + 4 * u - 8 * x[0] ** 2, 4 * x[0]], [4 * x[0], -2.0]])


def _banana_tressian(x: Array) -> Array:
    t = np.zeros((2, 2, 2))
    t[0, 0, 0] = -24 * x[0]
    t[0, 0, 1] = t[0, 1, 0] = t[1, 0, 0] = 4.0
    return t


# ---------------------------------------------------------------------------------
# torus: the constraint of a torus embedded in 3-d, 3 -> 1


def _torus(ns: SimpleNamespace) -> Callable[[Any], Any]:
    def torus(x: Any) -> Any:
        r = ns.sqrt(x[0] ** 2 + x[1] ** 2)
        return ns.stack([(r - 1) ** 2 + x[2] ** 2 - 0.25])

    return torus


def _torus_value(x: Array) -> Array:
    r = math.hypot(x[0], x[1])
    return np.array([(r - 1) ** 2 + x[2] ** 2 - 0.25])


def _torus_jacobian(x: Array) -> Array:
    r = math.hypot(x[0], x[1])
    return np.array([[2 * (r - 1) * x[0] / r, 2 * (r - 1) * x[1] / r, 2 * x[2]]])


def _torus_hessian(x: Array) -> Array:
    r = math.hypot(x[0], x[1])
    h = np.zeros((1, 3, 3))
    xy = x[:2]
    h[0, :2, :2] = 2 * np.eye(2) - (2 / r) * (np.eye(2) - np.outer(xy, xy) / r**2)
    h[0, 2, 2] = 2.0
    return h


def _torus_sample(rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
    # Keep away from the z axis, where the constraint is not differentiable.
    angle = rng.uniform(0, 2 * np.pi)
    radius = rng.uniform(0.5, 1.5)
    return np.array(
        [radius * np.cos(angle), radius * np.sin(angle), rng.uniform(-1, 1)]
    )


# ---------------------------------------------------------------------------------
# linear: a linear map R^4 -> R^2

_LINEAR_A = np.array([[1.0, -2.0, 0.5, 3.0], [0.0, 1.5, -1.0, 2.0]])
_LINEAR_B = np.array([0.5, -1.0])


def _linear(ns: SimpleNamespace) -> Callable[[Any], Any]:
    def linear(x: Any) -> Any:
        return ns.const(_LINEAR_A, x) @ x + ns.const(_LINEAR_B, x)

    return linear


# ---------------------------------------------------------------------------------
# logistic: logistic-regression log-posterior with a standard normal prior


LOGISTIC_SEED = 20261122
"""Seed of the logistic model's data."""


def logistic_data(
    dim: int, n_data: int, seed: int = LOGISTIC_SEED
) -> tuple[Array, Array]:
    """The logistic model's data.

    Args:
        dim: Number of coefficients ``d``.
        n_data: Number of observations ``n``.
        seed: Seed of the data.

    Returns:
        Design matrix ``A`` of shape ``(n, d)`` and 0/1 labels ``y`` of shape ``(n,)``.
    """
    rng = np.random.default_rng(seed)
    design = rng.standard_normal((n_data, dim)) / np.sqrt(dim)
    labels = (rng.uniform(size=n_data) < 0.5).astype(np.float64)
    return design, labels


def logistic_model(
    dim: int = 50, n_data: int = 100, seed: int = LOGISTIC_SEED
) -> Model:
    """Logistic-regression log-posterior ``Σ y z - log(1 + e^z) - β·β/2``, ``z = Aβ``.

    Args:
        dim: Number of coefficients ``d``.
        n_data: Number of observations.
        seed: Seed of the data (:func:`logistic_data`).

    Returns:
        The model, with input shape ``(dim,)``.
    """
    design, labels = logistic_data(dim, n_data, seed)

    def formula(ns: SimpleNamespace) -> Callable[[Any], Any]:
        def logistic(beta: Any) -> Any:
            z = ns.const(design, beta) @ beta
            return (
                ns.sum(ns.const(labels, beta) * z - ns.log1p(ns.exp(z)))
                - ns.sum(beta**2) / 2
            )

        return logistic

    def sigma(beta: Array) -> Array:
        return 1 / (1 + np.exp(-(design @ beta)))

    def value(beta: Array) -> Array:
        z = design @ beta
        return np.sum(labels * z - np.log1p(np.exp(z))) - beta @ beta / 2

    def grad(beta: Array) -> Array:
        return design.T @ (labels - sigma(beta)) - beta

    def hessian(beta: Array) -> Array:
        s = sigma(beta)
        return -(design.T * (s * (1 - s))) @ design - np.eye(dim)

    def tressian(beta: Array) -> Array:
        s = sigma(beta)
        w = s * (1 - s) * (1 - 2 * s)
        return -np.einsum("n,ni,nj,nk->ijk", w, design, design, design)

    # SymPy recurses past Python's stack limit (in is_constant) when SymNum takes
    # second derivatives of this likelihood, even at d = 5.
    skip = {"symnum": "SymPy hits its recursion limit on this model's Hessian"}
    return Model(
        "logistic" if dim == 50 else f"logistic{dim}",
        f"logistic-regression log-posterior, d = {dim}",
        (dim,),
        True,
        formula,
        value,
        grad,
        hessian,
        tressian,
        skip=skip,
    )


# ---------------------------------------------------------------------------------
# Test models for any input shape


def _log1p_norm(ns: SimpleNamespace) -> Callable[[Any], Any]:
    def log1p_norm(x: Any) -> Any:
        return ns.log1p(ns.sum(x**2))

    return log1p_norm


def _ln_value(x: Array) -> Array:
    return np.log1p(np.sum(x**2))


def _ln_grad(x: Array) -> Array:
    return 2 * x / (1 + np.sum(x**2))


def _ln_hessian(x: Array) -> Array:
    s, v, n = 1 + np.sum(x**2), x.ravel(), x.size
    h = 2 * np.eye(n) / s - 4 * np.outer(v, v) / s**2
    return h.reshape(x.shape * 2)


def _ln_tressian(x: Array) -> Array:
    s, v, n = 1 + np.sum(x**2), x.ravel(), x.size
    eye = np.eye(n)
    t = (
        -4 * np.einsum("jk,l->jkl", eye, v) / s**2
        - 4 * np.einsum("jl,k->jkl", eye, v) / s**2
        - 4 * np.einsum("kl,j->jkl", eye, v) / s**2
        + 16 * np.einsum("j,k,l->jkl", v, v, v) / s**3
    )
    return t.reshape(x.shape * 3)


def _sq_sin(ns: SimpleNamespace) -> Callable[[Any], Any]:
    def sq_sin(x: Any) -> Any:
        return ns.stack([ns.sum(x**2), ns.sum(ns.sin(x) * x)])

    return sq_sin


def _ss_value(x: Array) -> Array:
    return np.array([np.sum(x**2), np.sum(np.sin(x) * x)])


def _ss_jacobian(x: Array) -> Array:
    return np.stack([2 * x, np.cos(x) * x + np.sin(x)])


def _ss_hessian(x: Array) -> Array:
    v, n = x.ravel(), x.size
    h = np.stack([2 * np.eye(n), np.diag(2 * np.cos(v) - v * np.sin(v))])
    return h.reshape((2, *x.shape, *x.shape))


MODELS: dict[str, Model] = {
    "banana": Model(
        "banana",
        "2-d banana log-density",
        (2,),
        True,
        _banana,
        _banana_value,
        _banana_grad,
        _banana_hessian,
        _banana_tressian,
    ),
    "torus": Model(
        "torus",
        "torus constraint ((x²+y²)^½ − 1)² + z² − 0.25, 3 → 1",
        (3,),
        False,
        _torus,
        _torus_value,
        _torus_jacobian,
        _torus_hessian,
        sample=_torus_sample,
    ),
    "linear": Model(
        "linear",
        "linear map 4 → 2",
        (4,),
        False,
        _linear,
        lambda x: _LINEAR_A @ x + _LINEAR_B,
        lambda x: _LINEAR_A.copy(),
        lambda x: np.zeros((2, 4, 4)),
    ),
    "logistic": logistic_model(),
}
"""The demo's models, by name."""

SHAPED_MODELS: dict[str, Model] = {
    "log1p_norm": Model(
        "log1p_norm",
        "log(1 + Σ x²), any input shape",
        (3,),
        True,
        _log1p_norm,
        _ln_value,
        _ln_grad,
        _ln_hessian,
        _ln_tressian,
    ),
    "sq_sin": Model(
        "sq_sin",
        "[Σ x², Σ x sin x], any input shape",
        (3,),
        False,
        _sq_sin,
        _ss_value,
        _ss_jacobian,
        _ss_hessian,
    ),
}
"""Models defined for any input shape (used by the tests)."""


def reference(model: Model, op_name: str, x: Array) -> tuple[Any, ...]:
    """Closed-form results of ``op_name`` at ``x``; closures as NumPy functions.

    Read from the operator table: each derivative output is the derivative of the
    output it names (value → first → second → third closed form), and a closure
    contracts that derivative with its argument on the left (VJP-like) or the right
    (JVP-like).

    Args:
        model: The model.
        op_name: Operator name.
        x: Input of shape ``S``.

    Returns:
        The operator's tuple computed from the closed forms.

    Raises:
        ValueError: For an operator the model has no closed form for (the MTP of an
            array-valued model).
    """
    from diffops.operators import CLOSURES, OPERATORS

    op = OPERATORS[op_name]
    order = {"value": 0, "grad": 1, "jacobian": 1, "hessian": 2}
    forms = (model.value, model.first, model.second, model.third)

    def form(name: str, extra: int = 0) -> Array:
        function = forms[order[name] + extra]
        if function is None:
            msg = f"{model.name} has no closed form for the derivative of {name}."
            raise ValueError(msg)
        return function(x)

    outputs: list[Any] = []
    for name in op.outputs:
        closure = CLOSURES.get(name)
        if closure is None:
            outputs.append(form(name))
            continue
        derivative = form(closure.of, extra=1)
        if closure.side == "left":
            axes = np.ndim(derivative) - x.ndim
            outputs.append(lambda m, d=derivative, a=axes: np.tensordot(m, d, axes=a))
        else:
            outputs.append(lambda v, d=derivative: np.tensordot(d, v, axes=x.ndim))
    return tuple(outputs)


def applicable_ops(model: Model) -> tuple[str, ...]:
    """Operators that apply to ``model`` (scalar operators need a scalar model).

    Args:
        model: The model.

    Returns:
        Operator names in ``DIFF_OPS`` order.
    """
    from diffops.operators import OPERATORS

    return tuple(
        op.name for op in OPERATORS.values() if model.scalar or not op.scalar_only
    )
