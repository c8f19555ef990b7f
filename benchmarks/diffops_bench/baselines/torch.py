"""Hand-written PyTorch: ``torch.func`` compositions and plain ``torch.autograd``.

Each takes the NumPy input through ``torch.from_numpy`` and returns
``.detach().numpy()`` outputs, as diffops does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.models import Model

from ..implementations import OpFn

VARIANTS: dict[str, tuple[str, ...]] = {
    "grad_and_value": ("torch.func.grad_and_value", "torch.autograd.grad"),
    "hessian_grad_and_value": (
        "torch.func.jacfwd(grad_and_value)",
        "torch.func.jacrev(grad_and_value)",
        "torch.func.hessian + grad_and_value",
        "torch.autograd.grad (row loop)",
        "torch.autograd.grad (is_grads_batched)",
    ),
    "mtp_hessian_grad_and_value": (
        "torch.func.vjp(jacfwd(grad_and_value))",
        "torch.func.vjp(jacrev(grad_and_value))",
        "torch.autograd.grad (row loop)",
        "torch.autograd.grad (is_grads_batched)",
    ),
    "jacobian_and_value": (
        "torch.func.jacrev",
        "torch.func.jacfwd",
        "torch.autograd.grad (row loop)",
        "torch.autograd.grad (is_grads_batched)",
        "torch.autograd.forward_ad (column loop)",
    ),
    "mhp_jacobian_and_value": (
        "torch.func.vjp(jacrev)",
        "torch.func.vjp(jacfwd)",
        "torch.autograd.grad (row loop)",
    ),
    "vjp_and_value": ("torch.func.vjp", "torch.autograd.grad"),
    "jvp_and_value": (
        "torch.func.jvp per v",
        "torch.func.linearize",
        "torch.autograd.forward_ad per v",
    ),
    "hvp_grad_and_value": (
        "torch.func.jvp(grad) per v",
        "torch.autograd.grad (double backward)",
    ),
    "value": ("torch (plain call)",),
}
"""Hand-written calls per operator: ``torch.func`` compositions and plain autograd."""


def build(model: Model, op: str, variant: str) -> OpFn:
    """Build the hand-written PyTorch ``variant`` of ``op`` for ``model``.

    Args:
        model: The function.
        op: Operator name or ``"value"``.
        variant: One of ``VARIANTS[op]``.

    Returns:
        NumPy in (``torch.from_numpy``), NumPy out (``.detach().numpy()``).
    """
    import torch
    import torch.autograd.forward_ad as fwad

    f, _ = model.function("torch")
    tf: Any = torch.func
    grad: Any = torch.autograd.grad
    tensor = torch.from_numpy

    def out(t: Any) -> np.ndarray:
        return t.detach().numpy()

    def closure(fn: Callable[[Any], Any]) -> Callable[[np.ndarray], np.ndarray]:
        return lambda u: out(fn(tensor(u)))

    def g_aux(x: Any) -> Any:
        g, v = tf.grad_and_value(f)(x)
        return g, (g, v)

    def f_aux(x: Any) -> Any:
        y = f(x)
        return y, y

    def rows(y: Any, xt: Any, create_graph: bool) -> Any:
        basis = torch.eye(y.numel(), dtype=y.dtype)
        return torch.stack(
            [
                grad(
                    y,
                    xt,
                    e.reshape(y.shape),
                    retain_graph=True,
                    create_graph=create_graph,
                    allow_unused=True,
                    materialize_grads=True,
                )[0]
                for e in basis
            ]
        )

    def batched(y: Any, xt: Any, create_graph: bool) -> Any:
        basis = torch.eye(y.numel(), dtype=y.dtype).reshape((-1, *y.shape))
        (r,) = grad(
            y,
            xt,
            basis,
            retain_graph=True,
            create_graph=create_graph,
            is_grads_batched=True,
        )
        return r

    if op == "value":
        return lambda x: (out(f(tensor(x))),)
    if variant == "torch.func.grad_and_value":
        gv = tf.grad_and_value(f)

        def func_grad(x: np.ndarray) -> tuple[Any, ...]:
            g, v = gv(tensor(x))
            return out(g), out(v)

        return func_grad
    if op == "grad_and_value":

        def autograd_grad(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x).requires_grad_()
            v = f(xt)
            (g,) = grad(v, xt)
            return out(g), out(v)

        return autograd_grad
    if variant == "torch.func.hessian + grad_and_value":
        hess, gv = tf.hessian(f), tf.grad_and_value(f)

        def func_hess2(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x)
            g, v = gv(xt)
            return out(hess(xt)), out(g), out(v)

        return func_hess2
    if op == "hessian_grad_and_value" and variant.startswith("torch.func"):
        transform = tf.jacfwd if "jacfwd" in variant else tf.jacrev
        hgv = transform(g_aux, has_aux=True)

        def func_hess(x: np.ndarray) -> tuple[Any, ...]:
            h, (g, v) = hgv(tensor(x))
            return out(h), out(g), out(v)

        return func_hess
    if op in ("hessian_grad_and_value", "mtp_hessian_grad_and_value") and (
        variant.startswith("torch.autograd")
    ):
        second = batched if "batched" in variant else rows
        keep = op == "mtp_hessian_grad_and_value"

        def autograd_hess(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x).requires_grad_()
            v = f(xt)
            (g,) = grad(v, xt, create_graph=True)
            h = second(g, xt, keep)
            if not keep:
                return out(h), out(g), out(v)

            def mtp(m: Any) -> Any:
                return grad(h, xt, m, retain_graph=True)[0]

            return closure(mtp), out(h), out(g), out(v)

        return autograd_hess
    if op == "mtp_hessian_grad_and_value":
        transform = tf.jacfwd if "jacfwd" in variant else tf.jacrev
        hgv = transform(g_aux, has_aux=True)

        def func_mtp(x: np.ndarray) -> tuple[Any, ...]:
            h, vjp_fn, (g, v) = tf.vjp(hgv, tensor(x), has_aux=True)
            return closure(lambda m: vjp_fn(m)[0]), out(h), out(g), out(v)

        return func_mtp
    if op == "jacobian_and_value" and variant.startswith("torch.func"):
        transform = tf.jacfwd if "jacfwd" in variant else tf.jacrev
        jv = transform(f_aux, has_aux=True)

        def func_jac(x: np.ndarray) -> tuple[Any, ...]:
            j, v = jv(tensor(x))
            return out(j), out(v)

        return func_jac
    if variant == "torch.autograd.forward_ad (column loop)":

        def forward_jac(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x)
            columns = []
            with fwad.dual_level():
                for e in torch.eye(xt.numel(), dtype=xt.dtype):
                    primal, tangent = fwad.unpack_dual(f(fwad.make_dual(xt, e)))
                    columns.append(tangent)
            return out(torch.stack(columns, dim=-1)), out(primal)

        return forward_jac
    if op in ("jacobian_and_value", "mhp_jacobian_and_value") and (
        variant.startswith("torch.autograd")
    ):
        first = batched if "batched" in variant else rows
        keep = op == "mhp_jacobian_and_value"

        def autograd_jac(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x).requires_grad_()
            v = f(xt)
            j = first(v, xt, keep)
            if not keep:
                return out(j), out(v)

            def mhp(m: Any) -> Any:
                return grad(j, xt, m, retain_graph=True)[0]

            return closure(mhp), out(j), out(v)

        return autograd_jac
    if op == "mhp_jacobian_and_value":
        transform = tf.jacfwd if "jacfwd" in variant else tf.jacrev
        jv = transform(f_aux, has_aux=True)

        def func_mhp(x: np.ndarray) -> tuple[Any, ...]:
            j, vjp_fn, v = tf.vjp(jv, tensor(x), has_aux=True)
            return closure(lambda m: vjp_fn(m)[0]), out(j), out(v)

        return func_mhp
    if variant == "torch.func.vjp":

        def func_vjp(x: np.ndarray) -> tuple[Any, ...]:
            v, vjp_fn = tf.vjp(f, tensor(x))
            return closure(lambda u: vjp_fn(u)[0]), out(v)

        return func_vjp
    if variant == "torch.autograd.grad" and op == "vjp_and_value":

        def autograd_vjp(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x).requires_grad_()
            v = f(xt)
            return closure(lambda u: grad(v, xt, u, retain_graph=True)[0]), out(v)

        return autograd_vjp
    if variant == "torch.func.jvp per v":

        def func_jvp(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x)
            return closure(lambda u: tf.jvp(f, (xt,), (u,))[1]), out(f(xt))

        return func_jvp
    if variant == "torch.func.linearize":

        def func_linearize(x: np.ndarray) -> tuple[Any, ...]:
            v, jvp_fn = tf.linearize(f, tensor(x))
            return closure(jvp_fn), out(v)

        return func_linearize
    if variant == "torch.autograd.forward_ad per v":

        def forward_jvp(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x)

            def jvp(u: Any) -> Any:
                with fwad.dual_level():
                    return fwad.unpack_dual(f(fwad.make_dual(xt, u))).tangent

            return closure(jvp), out(f(xt))

        return forward_jvp
    if variant == "torch.func.jvp(grad) per v":
        g_only = tf.grad(f)

        def func_hvp(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x)
            g, v = tf.grad_and_value(f)(xt)
            hvp = closure(lambda u: tf.jvp(g_only, (xt,), (u,))[1])
            return hvp, out(g), out(v)

        return func_hvp
    if variant == "torch.autograd.grad (double backward)":

        def autograd_hvp(x: np.ndarray) -> tuple[Any, ...]:
            xt = tensor(x).requires_grad_()
            v = f(xt)
            (g,) = grad(v, xt, create_graph=True)
            hvp = closure(lambda u: grad(g, xt, u, retain_graph=True)[0])
            return hvp, out(g), out(v)

        return autograd_hvp
    msg = f"unknown torch variant {variant!r} for {op}"
    raise ValueError(msg)
