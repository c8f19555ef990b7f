"""SymNum's own generated NumPy function for the same operator."""

from __future__ import annotations

from diffops.models import Model

from ..implementations import OpFn

SYMNUM_OPS = {
    "grad_and_value": "grad",
    "hessian_grad_and_value": "hessian",
    "mtp_hessian_grad_and_value": "matrix_tressian_product",
    "jacobian_and_value": "jacobian",
    "mhp_jacobian_and_value": "matrix_hessian_product",
    "vjp_and_value": "vector_jacobian_product",
    "jvp_and_value": "jacobian_vector_product",
    "hvp_grad_and_value": "hessian_vector_product",
}
"""diffops operator → SymNum function with the same result (``return_aux=True``)."""

VARIANTS: dict[str, tuple[str, ...]] = {
    op: (f"symnum.{name}(f, return_aux=True)",) for op, name in SYMNUM_OPS.items()
}
"""One variant per operator: SymNum's own."""


def build(model: Model, op: str, variant: str) -> OpFn:
    """``symnum.<op>(f, return_aux=True)`` for ``model``.

    Args:
        model: The function.
        op: Operator name.
        variant: ``VARIANTS[op][0]`` (there is one).

    Returns:
        SymNum's generated function (NumPy in, NumPy out).
    """
    import symnum

    f, _ = model.function("symnum")
    generated: OpFn = getattr(symnum, SYMNUM_OPS[op])(f, return_aux=True)
    return generated
