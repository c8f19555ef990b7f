"""Structural sparsity of JAX functions, read from the jaxprs of their derivatives.

The Jacobian pattern of ``f`` is read from the program of its Jacobian-vector
product ``t -> J(x) t`` (:func:`jax.jvp`), traced once with ``x``, ``t`` and the extra
arguments all abstract: which elements of ``t`` each element of the result can
depend on is exactly which inputs each output can depend on. Reading the derivative's
program instead of ``f``'s means JAX has already applied every custom derivative rule
(``custom_jvp`` functions such as ``logaddexp``), and operations whose derivative is
zero (comparisons, ``stop_gradient``, integer arithmetic, ``floor``) drop out. The
Hessian pattern is the Jacobian pattern of the gradient, read the same way from
``t -> H(x) t`` (forward over reverse), and made symmetric. Functions that JAX cannot
differentiate in forward mode (``custom_vjp``) are read through their
vector-Jacobian product instead, which gives the transposed pattern.

The result depends on the program's structure, never on values: an entry that
happens to be zero at some point (``x[i] * x[i + 1]`` at ``x = 0``) is in the pattern.
Only compile-time constants of the program (literals, arrays the function closes over,
and what is computed from them) are read, to make indexing with constant indices
precise; ``x`` and the extra arguments are never assumed fixed, so indices passed as
arguments take the conservative rule. Every primitive has a rule or the conservative
one (:mod:`.propagate`), so a pattern can be too large, never too small.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diffops.backends.capabilities import Structure
from diffops.backends.jax_compile import inner_jaxprs
from diffops.backends.jax_sparsity import deps as D
from diffops.backends.jax_sparsity.propagate import Context, propagate
from diffops.backends.jax_sparsity.table import CONSERVATIVE, RULES

__all__ = [
    "CONSERVATIVE",
    "RULES",
    "hessian_pattern",
    "jacobian_pattern",
    "jacobian_structure",
    "structure",
]

Pattern = Any  # scipy.sparse.csr_array of 0/1, shape (outputs, inputs)


def _linear_pattern(
    program: Callable[..., Any], x: Any, seed: Any, args: Sequence[Any]
) -> tuple[Pattern, tuple[int, ...]]:
    """Which elements of ``seed`` each element of ``program``'s result depends on.

    ``program(x, seed, *args)`` is traced with every argument abstract; ``seed`` is
    the one argument whose elements are tracked.

    Returns:
        ``(pattern, shape)``: the pattern, ``(prod(shape), seed.size)``, and the
        shape of the result.
    """
    import jax

    closed = jax.make_jaxpr(program)(x, seed, *args)
    if _uses(closed.jaxpr, "custom_lin"):
        # A custom_vjp function under jvp: traced, but fails when run.
        msg = "can't apply forward-mode autodiff (jvp) to a custom_vjp function"
        raise TypeError(msg)
    shape = tuple(closed.out_avals[0].shape)
    n_seed = math.prod(np.shape(seed))
    n_args = len(closed.jaxpr.invars)
    in_deps: list[Any] = [None] * n_args
    in_deps[1] = D.identity(n_seed)
    out_deps, _ = propagate(
        closed.jaxpr, in_deps, [None] * n_args, closed.consts, Context(n_seed, RULES)
    )
    (deps,) = out_deps
    if deps is None:
        return D.empty(math.prod(shape), n_seed), shape
    return D.binary(deps), shape


def structure(
    kind: str, func: Callable[..., Any], x: Any, args: Sequence[Any]
) -> Structure:
    """The pattern of ``func``'s Jacobian or Hessian, its product modes, and ``F``.

    ``func`` is traced once; a Hessian's ``func`` must check that its value is a
    scalar (``F = ()``). Jacobians of functions without forward-mode rules
    (``custom_vjp``) come with reverse mode only.
    """
    if kind == "hessian":
        return Structure(hessian_pattern(func, x, args), ("symmetric",), ())
    pattern, forward, shape = jacobian_structure(func, x, args)
    return Structure(
        pattern, ("forward", "reverse") if forward else ("reverse",), shape
    )


def _uses(jaxpr: Any, primitive: str) -> bool:
    """Whether ``jaxpr`` or a jaxpr inside it binds ``primitive``."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == primitive:
            return True
        if any(_uses(inner, primitive) for inner in inner_jaxprs(eqn)):
            return True
    return False


def jacobian_pattern(func: Callable[..., Any], x: Any, args: Sequence[Any]) -> Pattern:
    """The structural pattern of ``∂f(x, *args)/∂x``: shape ``(prod(F), prod(S))``.

    Args:
        func: Function written with ``jax.numpy``.
        x: A point (only its shape and dtype are used).
        args: Extra arguments (only their structure, shapes and dtypes are used).

    Returns:
        A ``scipy.sparse.csr_array`` of 0/1 entries.
    """
    return jacobian_structure(func, x, args)[0]


def jacobian_structure(
    func: Callable[..., Any], x: Any, args: Sequence[Any]
) -> tuple[Pattern, bool, tuple[int, ...]]:
    """:func:`jacobian_pattern`, whether JAX can differentiate ``func`` forward, ``F``.

    ``func`` is traced once (inside its JVP; inside its VJP if it has no forward-mode
    rules), and the shape ``F`` of its value read from that trace.

    Returns:
        ``(pattern, forward, F)``; ``forward`` is false for functions that only have
        reverse-mode rules (``custom_vjp``), whose Jacobian products must be VJPs.
    """
    import jax

    def jvp(y: Any, t: Any, *a: Any) -> Any:
        return jax.jvp(lambda z: func(z, *a), (y,), (t,))[1]

    try:
        pattern, shape = _linear_pattern(jvp, x, x, args)
        return pattern, True, shape
    except Exception as forward_error:  # e.g. custom_vjp: no forward mode
        try:
            out = jax.eval_shape(lambda y, *a: func(y, *a), x, *args)
            cotangent = np.zeros(out.shape, dtype=out.dtype)

            def vjp(y: Any, c: Any, *a: Any) -> Any:
                return jax.vjp(lambda z: func(z, *a), y)[1](c)[0]

            transposed, _ = _linear_pattern(vjp, x, cotangent, args)
        except Exception:
            raise forward_error from None
        return D.binary(transposed.T), False, tuple(out.shape)


def hessian_pattern(func: Callable[..., Any], x: Any, args: Sequence[Any]) -> Pattern:
    """The structural pattern of the Hessian of a scalar ``f``: symmetric, ``(n, n)``.

    Args:
        func: Scalar function written with ``jax.numpy``.
        x: A point (only its shape and dtype are used).
        args: Extra arguments (only their structure, shapes and dtypes are used).

    Returns:
        A symmetric ``scipy.sparse.csr_array`` of 0/1 entries.
    """
    import jax

    def grad(y: Any, *a: Any) -> Any:
        return jax.grad(lambda z: func(z, *a))(y)

    def hvp(y: Any, t: Any, *a: Any) -> Any:
        return jax.jvp(lambda z: grad(z, *a), (y,), (t,))[1]

    try:
        pattern, _ = _linear_pattern(hvp, x, x, args)
    except Exception as forward_error:

        def vhp(y: Any, c: Any, *a: Any) -> Any:
            return jax.vjp(lambda z: grad(z, *a), y)[1](c)[0]

        try:
            pattern, _ = _linear_pattern(vhp, x, x, args)
        except Exception:
            raise forward_error from None
    return D.binary(pattern + pattern.T)
