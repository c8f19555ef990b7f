"""PyTensor Ops for functions written in JAX, PyTorch or Autograd: :func:`pytensor_op`.

PyMC builds its models as PyTensor graphs and samples them with NUTS, which needs
the gradient of the log-density. A model part written in another framework (a
black-box log-likelihood, a simulator) enters the graph as an ``Op`` whose
``perform`` calls a diffops derivative function and whose gradient (``L_op``) is
built from diffops' vector-Jacobian products:

- a **scalar** function (``output_ndim=0``, e.g. a log-likelihood) becomes one Op
  with two outputs, the value and the gradient, computed together by
  ``grad_and_value`` (the VJP of the value with the cotangent 1). The Op returns the
  value; its gradient graph reads the second output of the same node, so NUTS,
  which asks for the log-density and its gradient at each point, evaluates the
  function once per point. Second derivatives (the gradient of the gradient
  output) are Hessian-vector products (``hvp_grad_and_value``), never the
  Hessian;
- an **array-valued** function (``output_ndim >= 1``, e.g. an ODE solution used as
  the mean of a likelihood) becomes an Op returning the value; its gradient is a
  second Op applying ``vjp_and_value``'s closure to the incoming cotangent.

Values and gradients are float64 (inputs are cast to float64 in the graph), and
every output is a fresh, writable array that PyTensor may overwrite in place.

PyTensor is imported only when an Op is first built (``import diffops`` and
``import diffops.pytensor`` do not import it): the Op classes live in
:mod:`diffops.pytensor.ops`, which imports PyTensor and is imported on first use;
they are also reachable as attributes of this module. Ops pickle by reference to
their classes (PyMC pickles its step methods for worker processes started with
``spawn`` or ``forkserver``).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from diffops.derivative import DerivativeFunction

if TYPE_CHECKING:
    from pytensor.graph.op import Op

__all__ = ["pytensor_op"]

_OP_CLASSES = (
    "ScalarFunctionOp",
    "HessianVectorProductOp",
    "ArrayFunctionOp",
    "VectorJacobianProductOp",
)


def _ops_module() -> ModuleType:
    """:mod:`diffops.pytensor.ops`, imported on first use (this imports PyTensor)."""
    try:
        from diffops.pytensor import ops
    except ImportError as err:
        msg = (
            f"diffops.pytensor_op needs PyTensor ({err}). Install it with PyMC: "
            f"`pip install pymc` (or `pip install diffops[pymc]`)."
        )
        raise ImportError(msg) from err
    return ops


def __getattr__(name: str) -> Any:
    # The Op classes, from the module that imports PyTensor (on first access).
    if name in _OP_CLASSES:
        return getattr(_ops_module(), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def pytensor_op(
    func: Callable[..., Any],
    backend: str = "jax",
    *,
    output_ndim: int = 0,
    **options: Any,
) -> Op:
    """Turn a function written in JAX, PyTorch or Autograd into a PyTensor ``Op``.

    The Op computes ``func`` with diffops and has a gradient (``L_op``) built from
    its vector-Jacobian product, so it can be used in a PyMC model sampled with
    NUTS:

    >>> import jax.numpy as jnp, pymc as pm                    # doctest: +SKIP
    >>> def log_likelihood(theta, y):                          # doctest: +SKIP
    ...     return -0.5 * jnp.sum((y - theta[0]) ** 2) / jnp.exp(2 * theta[1])
    >>> loglike = diffops.pytensor_op(log_likelihood)          # doctest: +SKIP
    >>> with pm.Model():                                       # doctest: +SKIP
    ...     theta = pm.Normal("theta", 0, 1, shape=2)
    ...     pm.Potential("likelihood", loglike(theta, y))
    ...     idata = pm.sample()

    Calling the Op, ``op(x, *args)``, gives a PyTensor variable: the value of
    ``func(x, *args)``, float64 (``x`` is cast to float64 in the graph). ``x`` may
    have any shape; ``args`` (NumPy arrays, numbers or PyTensor variables such as
    ``pm.Data``) are passed through undifferentiated, and asking for their gradient
    is an error.

    For a scalar ``func`` (``output_ndim=0``) the value and gradient come from one
    ``grad_and_value`` evaluation per point, and second derivatives are available
    as Hessian-vector products; for an array-valued ``func`` the gradient is one
    ``vjp_and_value`` evaluation (its own derivatives are not available).

    With ``pm.sample(cores=2, ...)`` on the ``jax`` backend, start the
    workers with ``mp_ctx="spawn"`` or ``"forkserver"``: JAX cannot compute in a
    child created by ``fork`` after it computed in the parent (diffops raises
    ``ForkedProcessError`` there). Ops pickle as their recipe.

    Args:
        func: Function ``func(x, *args)`` of an array ``x`` of shape ``S``, written
            with the backend's framework, returning a scalar (``output_ndim=0``)
            or an array with ``output_ndim`` dimensions.
        backend: Backend name (case-insensitive), default ``"jax"``.
        output_ndim: Number of dimensions of ``func``'s value: 0 (default) for a
            log-likelihood, 1 or more for an array-valued function.
        **options: Backend options (``arg_shape``, ``extra_shapes`` on
            ``symnum``).

    Returns:
        A PyTensor ``Op``: ``op(x, *args)`` is a float64 variable of
        ``output_ndim`` dimensions.

    Raises:
        ValueError: If ``output_ndim`` is negative.
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
        ImportError: If PyTensor is not installed (``pip install pymc``).
    """
    if not (isinstance(output_ndim, int) and output_ndim >= 0):
        msg = (
            f"output_ndim must be a non-negative integer (the number of dimensions "
            f"of func's value: 0 for a log-likelihood), not {output_ndim!r}."
        )
        raise ValueError(msg)
    # Check the function and backend before importing PyTensor.
    first = "grad_and_value" if output_ndim == 0 else "vjp_and_value"
    DerivativeFunction(func, first, backend, **options)
    ops = _ops_module()
    if output_ndim == 0:
        op: Op = ops.ScalarFunctionOp(func, backend, options)
    else:
        op = ops.ArrayFunctionOp(func, backend, options, output_ndim)
    return op
