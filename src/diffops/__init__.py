"""diffops: derivative functions that return the value too.

Build gradient, Hessian, Jacobian, vector-Jacobian product, matrix-Hessian product
and matrix-Tressian product functions for a function written with JAX, Autograd,
SymNum or PyTorch. The API is a superset of ``mici.autodiff``.

>>> import diffops, jax.numpy as jnp                      # doctest: +SKIP
>>> grad_and_value = diffops.grad_and_value(lambda x: jnp.sum(x**2))  # doctest: +SKIP
>>> grad_and_value([1.0, 2.0])                            # doctest: +SKIP
(array([2., 4.]), np.float64(5.0))

``import diffops`` imports no array framework and no backend module; each is imported
on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from diffops.api import (
    grad_and_value,
    hessian_grad_and_value,
    hvp_grad_and_value,
    jacobian_and_value,
    jvp_and_value,
    mhp_jacobian_and_value,
    mtp_hessian_grad_and_value,
    vjp_and_value,
)
from diffops.compat import (
    AutodiffBackend,
    autodiff_fallback,
    get_backend,
    register_backend,
    wrap_function,
)
from diffops.derivative import DerivativeFunction
from diffops.operators import ALL_DIFF_OPS, DIFF_OPS
from diffops.registry import available_backends, registered_backends

if TYPE_CHECKING:  # imported on first use (see __getattr__), typed for checkers
    from diffops.batching import BatchedDerivativeFunction, batched
    from diffops.check import (
        CheckReport,
        CheckUsageError,
        DerivativeCheckError,
        PartCheck,
        check_derivatives,
    )
    from diffops.ipopt import IpoptProblem, ipopt_problem
    from diffops.pytensor import pytensor_op
    from diffops.scipy import (
        ScipyConstraint,
        ScipyObjective,
        scipy_constraint,
        scipy_objective,
    )

__version__ = "0.2.0"

_LAZY_MODULES = (
    "jax_wrapper",
    "autograd_wrapper",
    "symnum_wrapper",
    "torch_wrapper",
    "dask",
)


# Larger parts of the API load on first access, keeping ``import diffops`` light.
_LAZY_ATTRIBUTES = {
    "BatchedDerivativeFunction": "diffops.batching",
    "batched": "diffops.batching",
    "CheckReport": "diffops.check",
    "CheckUsageError": "diffops.check",
    "DerivativeCheckError": "diffops.check",
    "PartCheck": "diffops.check",
    "check_derivatives": "diffops.check",
    "pytensor_op": "diffops.pytensor",
    "IpoptProblem": "diffops.ipopt",
    "ipopt_problem": "diffops.ipopt",
    "ScipyConstraint": "diffops.scipy",
    "ScipyObjective": "diffops.scipy",
    "scipy_constraint": "diffops.scipy",
    "scipy_objective": "diffops.scipy",
}


def __getattr__(name: str) -> Any:
    # The mici-compatible backend modules and ``diffops.dask`` load on first access
    # (``diffops.jax_wrapper`` or ``from diffops import jax_wrapper``), keeping
    # ``import diffops`` light.
    if name in _LAZY_MODULES:
        return importlib.import_module(f"diffops.{name}")
    if name in _LAZY_ATTRIBUTES:
        value = getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
        globals()[name] = value
        return value
    msg = f"module 'diffops' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "ALL_DIFF_OPS",
    "DIFF_OPS",
    "AutodiffBackend",
    "BatchedDerivativeFunction",
    "CheckReport",
    "CheckUsageError",
    "DerivativeCheckError",
    "DerivativeFunction",
    "IpoptProblem",
    "PartCheck",
    "ScipyConstraint",
    "ScipyObjective",
    "autodiff_fallback",
    "autograd_wrapper",
    "available_backends",
    "batched",
    "check_derivatives",
    "get_backend",
    "grad_and_value",
    "hessian_grad_and_value",
    "hvp_grad_and_value",
    "ipopt_problem",
    "jacobian_and_value",
    "jax_wrapper",
    "jvp_and_value",
    "mhp_jacobian_and_value",
    "mtp_hessian_grad_and_value",
    "pytensor_op",
    "register_backend",
    "registered_backends",
    "scipy_constraint",
    "scipy_objective",
    "symnum_wrapper",
    "torch_wrapper",
    "vjp_and_value",
    "wrap_function",
]
