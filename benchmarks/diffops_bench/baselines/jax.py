"""Hand-written JAX: one ``jax.jit`` of the composed transforms, outputs to NumPy.

Built and timed inside one ``jax.enable_x64(True)`` block (:func:`x64`), like a user
who enabled x64 globally, so float64 inputs stay float64 as in diffops. A variant
named ``"jax eager: ..."`` is the same composition without ``jax.jit`` (what
``jax_nojit`` is compared with).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.models import Model

from ..implementations import OpFn

VARIANTS: dict[str, tuple[str, ...]] = {
    "grad_and_value": ("jax.jit(value_and_grad)",),
    "hessian_grad_and_value": (
        "jax.jit(jacfwd(value_and_grad, has_aux))",
        "jax.jit(hessian + value_and_grad)",
    ),
    "mtp_hessian_grad_and_value": ("jax.jit(vjp(jacfwd(value_and_grad)))",),
    "jacobian_and_value": (
        "jax.jit(jacfwd, has_aux)",
        "jax.jit(jacrev, has_aux)",
    ),
    "mhp_jacobian_and_value": (
        "jax.jit(vjp(jacfwd, has_aux))",
        "jax.jit(vjp(jacrev, has_aux))",
    ),
    "vjp_and_value": ("jax.jit(vjp)",),
    "jvp_and_value": ("jax.jit(linearize)", "jax.jit(f) + jax.jit(jvp) per v"),
    "hvp_grad_and_value": (
        "jax.jit(linearize(value_and_grad))",
        "jax.jit(value_and_grad) + jax.jit(jvp(grad)) per v",
    ),
    "value": ("jax.jit(f)",),
}
"""Hand-written compositions per operator."""

EAGER = "jax eager: "


def x64() -> contextlib.AbstractContextManager[Any]:
    """``jax.enable_x64(True)``, entered around building and timing JAX baselines."""
    import jax

    return jax.enable_x64(True)


def eager_name(variant: str) -> str:
    """``"jax.jit(vjp)"`` → ``"jax eager: vjp"``: the same without ``jax.jit``."""
    return EAGER + variant[len("jax.jit(") : -1]


def build(model: Model, op: str, variant: str) -> OpFn:
    """Build the hand-written JAX ``variant`` of ``op`` for ``model``.

    Args:
        model: The function.
        op: Operator name or ``"value"``.
        variant: One of ``VARIANTS[op]`` or its :func:`eager_name`.

    Returns:
        NumPy in, NumPy out; closures are ``jax.vjp`` pullbacks or ``jax.linearize``
        linear functions leaving the jit and applied by one compiled function, as a
        careful JAX user would; the "per v" variants instead compile one JVP of ``x``
        and ``v`` (the JAX documentation's HVP recipe for the gradient).
    """
    import jax

    f, _ = model.function("jax")
    asarray = np.asarray
    eager = variant.startswith(EAGER)
    jit: Callable[..., Any] = (lambda fn: fn) if eager else jax.jit
    if eager:
        variant = f"jax.jit({variant[len(EAGER) :]})"
    apply = jit(lambda pullback, u: pullback(u)[0])

    apply_linear = jit(lambda linear, u: linear(u))

    def closure(pullback: Any) -> Callable[[np.ndarray], np.ndarray]:
        return lambda u: asarray(apply(pullback, u))

    def linear_closure(linear: Any) -> Callable[[np.ndarray], np.ndarray]:
        return lambda u: asarray(apply_linear(linear, u))

    def f_aux(x: Any) -> Any:
        y = f(x)
        return y, y

    def g_aux(x: Any) -> Any:
        v, g = jax.value_and_grad(f)(x)
        return g, (g, v)

    def hgv(x: Any) -> Any:
        h, (g, v) = jax.jacfwd(g_aux, has_aux=True)(x)
        return h, (g, v)

    if variant == "jax.jit(f)":
        jf = jit(f)
        return lambda x: (asarray(jf(x)),)
    if variant == "jax.jit(value_and_grad)":
        jf = jit(jax.value_and_grad(f))

        def grad_call(x: np.ndarray) -> tuple[Any, ...]:
            v, g = jf(x)  # JAX returns (value, grad); diffops's order is (grad, value)
            return asarray(g), asarray(v)

        return grad_call
    if variant == "jax.jit(jacfwd(value_and_grad, has_aux))":
        jf = jit(hgv)

        def hess_call(x: np.ndarray) -> tuple[Any, ...]:
            h, (g, v) = jf(x)
            return asarray(h), asarray(g), asarray(v)

        return hess_call
    if variant == "jax.jit(hessian + value_and_grad)":
        jf = jit(lambda x: (jax.hessian(f)(x), jax.value_and_grad(f)(x)))

        def hess2_call(x: np.ndarray) -> tuple[Any, ...]:
            h, (v, g) = jf(x)
            return asarray(h), asarray(g), asarray(v)

        return hess2_call
    if variant == "jax.jit(vjp(jacfwd(value_and_grad)))":
        jf = jit(lambda x: jax.vjp(hgv, x, has_aux=True))

        def mtp_call(x: np.ndarray) -> tuple[Any, ...]:
            h, pullback, (g, v) = jf(x)
            return closure(pullback), asarray(h), asarray(g), asarray(v)

        return mtp_call
    if variant in ("jax.jit(jacfwd, has_aux)", "jax.jit(jacrev, has_aux)"):
        transform = jax.jacfwd if "jacfwd" in variant else jax.jacrev
        jf = jit(transform(f_aux, has_aux=True))

        def jac_call(x: np.ndarray) -> tuple[Any, ...]:
            j, v = jf(x)
            return asarray(j), asarray(v)

        return jac_call
    if variant in ("jax.jit(vjp(jacfwd, has_aux))", "jax.jit(vjp(jacrev, has_aux))"):
        transform = jax.jacfwd if "jacfwd" in variant else jax.jacrev
        jac = transform(f_aux, has_aux=True)
        jf = jit(lambda x: jax.vjp(jac, x, has_aux=True))

        def mhp_call(x: np.ndarray) -> tuple[Any, ...]:
            j, pullback, v = jf(x)
            return closure(pullback), asarray(j), asarray(v)

        return mhp_call
    if variant == "jax.jit(vjp)":
        jf = jit(lambda x: jax.vjp(f, x))

        def vjp_call(x: np.ndarray) -> tuple[Any, ...]:
            v, pullback = jf(x)
            return closure(pullback), asarray(v)

        return vjp_call
    if variant == "jax.jit(linearize)":
        jf = jit(lambda x: jax.linearize(f, x))

        def jvp_call(x: np.ndarray) -> tuple[Any, ...]:
            v, linear = jf(x)
            return linear_closure(linear), asarray(v)

        return jvp_call
    if variant == "jax.jit(f) + jax.jit(jvp) per v":
        jf = jit(f)
        jvp = jit(lambda x, u: jax.jvp(f, (x,), (u,))[1])

        def jvp_per_v_call(x: np.ndarray) -> tuple[Any, ...]:
            return (lambda u: asarray(jvp(x, u))), asarray(jf(x))

        return jvp_per_v_call
    if variant == "jax.jit(linearize(value_and_grad))":

        def grad_aux(x: Any) -> Any:
            v, g = jax.value_and_grad(f)(x)
            return g, v

        jf = jit(lambda x: jax.linearize(grad_aux, x, has_aux=True))

        def hvp_call(x: np.ndarray) -> tuple[Any, ...]:
            g, linear, v = jf(x)
            return linear_closure(linear), asarray(g), asarray(v)

        return hvp_call
    if variant == "jax.jit(value_and_grad) + jax.jit(jvp(grad)) per v":
        jf = jit(jax.value_and_grad(f))
        hvp = jit(lambda x, u: jax.jvp(jax.grad(f), (x,), (u,))[1])

        def hvp_per_v_call(x: np.ndarray) -> tuple[Any, ...]:
            v, g = jf(x)
            return (lambda u: asarray(hvp(x, u))), asarray(g), asarray(v)

        return hvp_per_v_call
    msg = f"unknown JAX variant {variant!r}"
    raise ValueError(msg)


DIAGNOSTIC_X64_PER_CALL = "jax.jit(value_and_grad), enable_x64 entered per call"


def build_x64_per_call(model: Model) -> OpFn:
    """Diagnostic: ``jax.jit(value_and_grad)`` entering ``enable_x64`` on every call."""
    import jax

    f, _ = model.function("jax")
    jf = jax.jit(jax.value_and_grad(f))

    def call(x: np.ndarray) -> tuple[Any, ...]:
        with jax.enable_x64(True):
            v, g = jf(x)
            return np.asarray(g), np.asarray(v)

    return call
