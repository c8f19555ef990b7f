"""The torch backend's operators under their ``mici.autodiff`` module name.

``from diffops import torch_wrapper`` works as ``from mici.autodiff import
torch_wrapper`` does: one factory per operator, taking and returning the framework's
own arrays. The backend itself lives in :mod:`diffops.backends.torch`.
"""

from diffops.backends.torch import (
    grad_and_value,
    hessian_grad_and_value,
    jacobian_and_value,
    mhp_jacobian_and_value,
    mtp_hessian_grad_and_value,
    return_numpy_arrays,
    vjp_and_value,
)

__all__ = [
    "grad_and_value",
    "hessian_grad_and_value",
    "jacobian_and_value",
    "mhp_jacobian_and_value",
    "mtp_hessian_grad_and_value",
    "return_numpy_arrays",
    "vjp_and_value",
]
