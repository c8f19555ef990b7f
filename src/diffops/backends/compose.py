"""Every operator, defined once from a framework's primitives.

A framework gives four things (:class:`Primitives`): a vector-Jacobian product with
the value (``vjp``), a linearization with the value (``linearize``: the
Jacobian-vector product as a function), a way to apply a product to a stack of seeds
(``products``: ``vmap`` or a loop), and a way to return a product closure from the
program (``closure``: a pytree for JAX). Everything else is written here, once:

- ``grad_and_value``: one VJP of the value, seeded with one;
- ``jacobian_and_value``: VJPs of the basis of ``F`` (reverse) or JVPs of the basis
  of ``S`` (forward), whichever needs fewer (``mode="auto"``);
- ``hessian_grad_and_value``: the Jacobian of the gradient, forward over reverse,
  carrying gradient and value along;
- ``mtp_hessian_grad_and_value`` and ``mhp_jacobian_and_value``: the VJP of the
  Hessian or Jacobian pass, whose results they carry along (so the pass is reused);
- ``jvp_and_value`` and ``hvp_grad_and_value``: a linearization of the value, or of
  the gradient, returned as a closure.

A backend may override an operator where its framework does measurably better; it
says so next to the override, with the number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.backends.support import check_value, jacobian_mode, require_fits
from diffops.operators import OPERATORS

Function = Callable[..., Any]
Program = Callable[..., tuple[Any, ...]]
"""A framework-level derivative program: ``program(x, *args) -> tuple``."""


class ForwardModeUnavailable(Exception):
    """The function has no forward-mode rules (reverse mode still works)."""


class Primitives:
    """What a framework provides for the operators to be built from.

    A framework defines :meth:`vjp`, :meth:`pushforward`, :meth:`products` and
    :meth:`closure`, and names its array module (:attr:`xp`) and array types; the
    array helpers below work through them, and :meth:`linearize` defaults to the
    reverse-mode construction.
    """

    array_types: tuple[type, ...] = ()

    @property
    def xp(self) -> Any:
        """The framework's array module (``jax.numpy``, ``torch``, ...)."""
        raise NotImplementedError

    def vjp(self, f: Function, x: Any) -> tuple[Any, Function, Any]:
        """``(out, pullback, aux)`` for ``f(y) = (out, aux)``.

        ``pullback(ct)`` is ``ct · ∂out/∂x``, callable more than once.
        """
        raise NotImplementedError

    def pushforward(
        self, f: Function, x: Any, out: Any, pullback: Function
    ) -> Function:
        """``t -> ∂out/∂x · t`` for ``out, pullback`` from ``vjp(f, x)``.

        Reverse-mode frameworks transpose the pullback (the double-VJP trick, reusing
        the recorded pass); others linearize ``f`` afresh.

        Raises:
            ForwardModeUnavailable: If ``f`` cannot be differentiated forward.
        """
        raise NotImplementedError

    def products(self, product: Function, seeds: Any) -> Any:
        """``product`` applied to each seed (stacked along the first axis), stacked."""
        raise NotImplementedError

    def closure(self, product: Function) -> Any:
        """``product`` in a form that can leave the program (a pytree for JAX)."""
        return product

    def linearize(
        self, f: Function, x: Any, *, symmetric: bool = False
    ) -> tuple[Any, Function, Any]:
        """``(out, push, aux)`` for ``f(y) = (out, aux)``: ``push(t) = ∂out/∂x · t``.

        The default records one VJP and returns its pullback when ``symmetric``
        promises a symmetric Jacobian (``f`` is a gradient), else its transpose.

        Raises:
            ForwardModeUnavailable: If ``f`` cannot be differentiated forward.
        """
        out, pullback, aux = self.vjp(f, x)
        if symmetric:
            return out, pullback, aux
        return out, self.pushforward(f, x, out, pullback), aux

    def jvps(
        self, f: Function, x: Any, seeds: Any, *, symmetric: bool = False
    ) -> tuple[Any, Any, Any]:
        """``(out, products, aux)``: ``∂out/∂x · seeds[k]`` for every ``k``, stacked.

        The default applies :meth:`linearize`'s product to each seed.

        Raises:
            ForwardModeUnavailable: If ``f`` cannot be differentiated forward.
        """
        out, push, aux = self.linearize(f, x, symmetric=symmetric)
        return out, self.products(push, seeds), aux

    def output_shape(self, f: Function, x: Any) -> tuple[int, ...] | None:
        """The shape of ``f(x)[0]`` if known without evaluating ``f`` (else ``None``).

        Lets a Jacobian choose its mode before differentiating.
        """
        return None

    def basis(self, shape: tuple[int, ...], like: Any) -> Any:
        """The unit arrays of ``shape``, stacked: shape ``(prod(shape),) + shape``."""
        n = math.prod(shape)
        eye = self.xp.eye(n, dtype=like.dtype)
        return eye if len(shape) == 1 else self.reshape(eye, (n, *shape))

    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        """``a`` with a new shape."""
        return self.xp.reshape(a, shape)

    def transpose(self, a: Any) -> Any:
        """A 2-d array transposed."""
        return a.T

    def ones_like(self, a: Any) -> Any:
        """Ones of ``a``'s shape and dtype."""
        return self.xp.ones_like(a)

    def zeros(self, shape: tuple[int, ...], like: Any) -> Any:
        """Zeros of ``shape`` in ``like``'s dtype."""
        return self.xp.zeros(shape, dtype=like.dtype)

    def shape(self, a: Any) -> tuple[int, ...]:
        """``a``'s shape."""
        return tuple(a.shape)

    def is_array(self, a: Any) -> bool:
        """Whether ``a`` is an array of the framework (what a function must return)."""
        return isinstance(a, self.array_types)

    def is_complex(self, a: Any) -> bool:
        """Whether the array ``a`` holds complex numbers."""
        return "complex" in str(a.dtype)

    def dtype(self, a: Any) -> Any:
        """``a``'s dtype as NumPy's (for the memory check)."""
        return np.dtype(a.dtype)


# ---------------------------------------------------------------------------------
# Building blocks


def evaluated(
    P: Primitives, func: Function, op_name: str, args: tuple[Any, ...]
) -> Function:
    """``y -> (func(y, *args), ())``, checked to return an array (0-d if scalar)."""
    op = OPERATORS[op_name]

    def f(y: Any) -> tuple[Any, tuple[()]]:
        value = func(y, *args)
        array = P.is_array(value)
        check_value(
            value,
            op,
            func,
            P.shape(value) if array else None,
            complex_=array and P.is_complex(value),
        )
        return value, ()

    return f


def first_cotangent(pullback: Function, cotangent: Any) -> Any:
    """``pullback(cotangent)[0]``: the cotangent of the one differentiated argument."""
    return pullback(cotangent)[0]


def checked(P: Primitives, func: Function, op_name: str) -> Function:
    """``(y, *args) -> func(y, *args)``, the value checked as :func:`evaluated` does."""
    return lambda y, *args: evaluated(P, func, op_name, args)(y)[0]


def value_and_grad(P: Primitives, f: Function, y: Any) -> tuple[Any, Any]:
    """``(value, grad)`` of a checked scalar function ``f`` (as :func:`evaluated`)."""
    value, pullback, _ = P.vjp(f, y)
    return value, pullback(P.ones_like(value))


def jacobian(
    P: Primitives, f: Function, y: Any, mode: str, what: str, op_name: str
) -> tuple[Any, Any, Any]:
    """``(jacobian, out, aux)`` of ``f(y) = (out, aux)``: shape ``F + S``.

    Reverse mode stacks one VJP per output element, forward mode one JVP per input
    element; ``auto`` takes the fewer. Forward falls back to reverse for functions
    without forward-mode rules.
    """
    s = P.shape(y)
    n_in = math.prod(s)
    known = P.output_shape(f, y)
    n_known = math.prod(known) if known is not None else 0
    if n_in and n_known and jacobian_mode(mode, n_in, n_known) == "forward":
        assert known is not None
        require_fits(what, known + s, P.dtype(y), op_name)
        forward = _forward_jacobian(P, f, y)
        if forward is not None:
            return forward
    out, pullback, aux = P.vjp(f, y)
    f_shape = P.shape(out)
    require_fits(what, f_shape + s, P.dtype(out), op_name)
    n_out = math.prod(f_shape)
    if n_in == 0 or n_out == 0:
        return P.zeros(f_shape + s, out), out, aux
    if known is None and jacobian_mode(mode, n_in, n_out) == "forward":
        try:
            push = P.pushforward(f, y, out, pullback)
            columns = P.products(push, P.basis(s, y))  # (n_in,) + F
        except ForwardModeUnavailable:
            pass
        else:
            return _from_columns(P, columns, s, f_shape), out, aux
    if n_out == 1:  # one row, the gradient: no basis, no stacking
        return P.reshape(pullback(P.ones_like(out)), f_shape + s), out, aux
    rows = P.products(pullback, P.basis(f_shape, out))  # (n_out,) + S
    return (rows if len(f_shape) == 1 else P.reshape(rows, f_shape + s)), out, aux


def _forward_jacobian(P: Primitives, f: Function, y: Any) -> tuple[Any, ...] | None:
    """``(jacobian, out, aux)`` from JVPs alone (``None``: no forward-mode rules)."""
    s = P.shape(y)
    try:
        out, columns, aux = P.jvps(f, y, P.basis(s, y))  # (n_in,) + F
    except ForwardModeUnavailable:
        return None
    return _from_columns(P, columns, s, P.shape(out)), out, aux


def _from_columns(
    P: Primitives, columns: Any, s: tuple[int, ...], f_shape: tuple[int, ...]
) -> Any:
    """The Jacobian of shape ``F + S`` from its columns stacked: ``(n_in,) + F``."""
    matrix = P.transpose(P.reshape(columns, (math.prod(s), math.prod(f_shape))))
    return P.reshape(matrix, f_shape + s)


def hessian(P: Primitives, func: Function, op_name: str, y: Any, args: Any) -> Any:
    """``(hessian, grad, value)``: forward over reverse, gradient and value carried."""
    f = evaluated(P, func, op_name, args)

    def grad_with_value(z: Any) -> tuple[Any, Any]:
        value, grad = value_and_grad(P, f, z)
        return grad, value

    s = P.shape(y)
    require_fits("hessian", s + s, P.dtype(y), op_name)
    if math.prod(s) == 0:
        grad, _, value = P.linearize(grad_with_value, y, symmetric=True)
        return P.zeros(s + s, y), grad, value
    # Column k of a symmetric matrix is also its row k.
    grad, rows, value = P.jvps(grad_with_value, y, P.basis(s, y), symmetric=True)
    return P.reshape(rows, s + s), grad, value


# ---------------------------------------------------------------------------------
# The operators


def vjp_and_value(P: Primitives, func: Function, op_name: str, **_: Any) -> Program:
    """``(x, *args) -> (vjp, value)``: the pullback of one VJP."""

    def vjp_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        value, pullback, _ = P.vjp(evaluated(P, func, op_name, args), x)
        return P.closure(pullback), value

    return vjp_and_value_func


def grad_and_value(P: Primitives, func: Function, op_name: str, **_: Any) -> Program:
    """``(x, *args) -> (grad, value)``: one VJP seeded with one."""

    def grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        value, grad = value_and_grad(P, evaluated(P, func, op_name, args), x)
        return grad, value

    return grad_and_value_func


def hessian_grad_and_value(
    P: Primitives, func: Function, op_name: str, **_: Any
) -> Program:
    """``(x, *args) -> (hessian, grad, value)``: the Jacobian of the gradient."""

    def hessian_grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        return hessian(P, func, op_name, x, args)  # type: ignore[no-any-return]

    return hessian_grad_and_value_func


def mtp_hessian_grad_and_value(
    P: Primitives, func: Function, op_name: str, **_: Any
) -> Program:
    """``(x, *args) -> (mtp, hessian, grad, value)``: the VJP of the Hessian pass."""

    def mtp_hessian_grad_and_value_func(
        x: Any, *args: Any
    ) -> tuple[Any, Any, Any, Any]:
        def hessian_pass(y: Any) -> tuple[Any, tuple[Any, Any]]:
            matrix, grad, value = hessian(P, func, op_name, y, args)
            return matrix, (grad, value)

        matrix, pullback, (grad, value) = P.vjp(hessian_pass, x)
        return P.closure(pullback), matrix, grad, value

    return mtp_hessian_grad_and_value_func


def jacobian_and_value(
    P: Primitives, func: Function, op_name: str, *, mode: str = "auto"
) -> Program:
    """``(x, *args) -> (jacobian, value)``: JVPs or VJPs of unit vectors."""

    def jacobian_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        f = evaluated(P, func, op_name, args)
        matrix, value, _ = jacobian(P, f, x, mode, "jacobian", op_name)
        return matrix, value

    return jacobian_and_value_func


def mhp_jacobian_and_value(
    P: Primitives, func: Function, op_name: str, *, mode: str = "auto"
) -> Program:
    """``(x, *args) -> (mhp, jacobian, value)``: the VJP of the Jacobian pass."""

    def mhp_jacobian_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        f = evaluated(P, func, op_name, args)

        def jacobian_pass(y: Any) -> tuple[Any, Any]:
            matrix, value, _ = jacobian(P, f, y, mode, "jacobian", op_name)
            return matrix, value

        matrix, pullback, value = P.vjp(jacobian_pass, x)
        return P.closure(pullback), matrix, value

    return mhp_jacobian_and_value_func


def jvp_and_value(P: Primitives, func: Function, op_name: str, **_: Any) -> Program:
    """``(x, *args) -> (jvp, value)``: the linearization of the value."""

    def jvp_and_value_func(x: Any, *args: Any) -> tuple[Any, Any]:
        value, push, _ = P.linearize(evaluated(P, func, op_name, args), x)
        return P.closure(push), value

    return jvp_and_value_func


def hvp_grad_and_value(
    P: Primitives, func: Function, op_name: str, **_: Any
) -> Program:
    """``(x, *args) -> (hvp, grad, value)``: the linearization of the gradient."""

    def hvp_grad_and_value_func(x: Any, *args: Any) -> tuple[Any, Any, Any]:
        f = evaluated(P, func, op_name, args)

        def grad_with_value(y: Any) -> tuple[Any, Any]:
            value, grad = value_and_grad(P, f, y)
            return grad, value

        grad, push, value = P.linearize(grad_with_value, x, symmetric=True)
        return P.closure(push), grad, value

    return hvp_grad_and_value_func


OPERATOR_BUILDERS: dict[str, Callable[..., Program]] = {
    "vjp_and_value": vjp_and_value,
    "grad_and_value": grad_and_value,
    "hessian_grad_and_value": hessian_grad_and_value,
    "mtp_hessian_grad_and_value": mtp_hessian_grad_and_value,
    "jacobian_and_value": jacobian_and_value,
    "mhp_jacobian_and_value": mhp_jacobian_and_value,
    "jvp_and_value": jvp_and_value,
    "hvp_grad_and_value": hvp_grad_and_value,
}
"""Each operator of :data:`diffops.operators.OPERATORS`, built from primitives."""


def build(P: Primitives, op_name: str, func: Function, **options: Any) -> Program:
    """The program of ``op_name`` for ``func`` from the primitives ``P``.

    Args:
        P: The framework's primitives.
        op_name: An operator name.
        func: The user's function.
        **options: The operator's options (``mode`` for Jacobians).

    Returns:
        ``program(x, *args) -> tuple`` in the operator's return order.
    """
    return OPERATOR_BUILDERS[op_name](P, func, op_name, **options)
