"""The symnum backend's operators under their ``mici.autodiff`` module name.

``from diffops import symnum_wrapper`` works as ``from mici.autodiff import
symnum_wrapper`` does: one factory per operator, taking and returning the framework's
own arrays. The backend itself lives in :mod:`diffops.backends.symnum`.
"""

from diffops.backends.symnum import (
    grad_and_value,
    hessian_grad_and_value,
    jacobian_and_value,
    mhp_jacobian_and_value,
    mtp_hessian_grad_and_value,
    vjp_and_value,
)

__all__ = [
    "grad_and_value",
    "hessian_grad_and_value",
    "jacobian_and_value",
    "mhp_jacobian_and_value",
    "mtp_hessian_grad_and_value",
    "vjp_and_value",
]
