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
``import diffops.pytensor`` do not import it); the Op classes are created then and
published as attributes of this module, so Ops pickle by reference to them (PyMC
pickles its step methods for worker processes started with ``spawn`` or
``forkserver``).
"""

from __future__ import annotations

import _thread
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from diffops.derivative import DerivativeFunction
from diffops.errors import NonScalarOutputError, ShapeMismatchError, function_name

if TYPE_CHECKING:
    from pytensor.graph.op import Op

__all__ = ["pytensor_op"]

_OP_CLASSES = (
    "ScalarFunctionOp",
    "HessianVectorProductOp",
    "ArrayFunctionOp",
    "VectorJacobianProductOp",
)
_classes: dict[str, type] = {}
_classes_lock = _thread.allocate_lock()

_NOT_DIFFERENTIATED = (
    "diffops differentiates with respect to the first argument only; the extra "
    "arguments (data) are passed through undifferentiated."
)


def _owned(value: Any) -> np.ndarray:
    """A fresh, writable float64 array (PyTensor may overwrite outputs in place)."""
    return np.array(value, dtype=np.float64, copy=True)


def _op_classes() -> dict[str, type]:
    """Create the Op classes on first use (this imports PyTensor)."""
    with _classes_lock:
        if not _classes:
            _classes.update(_define_op_classes())
        return _classes


def _define_op_classes() -> dict[str, type]:
    import pytensor.tensor as pt
    from pytensor import gradient
    from pytensor.graph import basic, op

    # PyTensor's graph objects are typed loosely here: the Ops below take extra
    # arguments after ``x``, which PyTensor's ``make_node(*inputs)`` stubs cannot
    # express.
    Apply: Any = basic.Apply
    OpBase: Any = op.Op
    DisconnectedType: Any = gradient.DisconnectedType
    grad_not_implemented: Any = gradient.grad_not_implemented

    def as_float64(x: Any) -> Any:
        x = pt.as_tensor_variable(x)
        return x if x.dtype == "float64" else pt.cast(x, "float64")

    def data_inputs(args: Sequence[Any]) -> list[Any]:
        return [pt.as_tensor_variable(a) for a in args]

    def data_grads(owner: Any, inputs: Sequence[Any], first: int) -> list[Any]:
        return [
            grad_not_implemented(owner, i, inputs[i], _NOT_DIFFERENTIATED)
            for i in range(first, len(inputs))
        ]

    class _DiffopsOp(OpBase):  # type: ignore[misc]
        """Shared parts: the recipe and the name shown in graphs.

        Instances pickle with their derivative functions, which pickle as their
        recipes and compile again where they are unpickled.
        """

        def __init__(self, func: Callable[..., Any], backend: str, options: Any):
            self.func = func
            self.backend = backend
            self.options = dict(options)

        def __str__(self) -> str:
            return (
                f"{type(self).__name__}{{{function_name(self.func)}, "
                f"backend={self.backend!r}}}"
            )

    class ScalarFunctionOp(_DiffopsOp):
        """``f(x, *args)`` for a scalar ``f``: outputs ``(value, grad)``.

        Calling the Op returns the value (``default_output = 0``); the gradient
        graph reads the second output, so the value and gradient at a point cost one
        ``grad_and_value`` evaluation.
        """

        default_output = 0

        def __init__(self, func: Callable[..., Any], backend: str, options: Any):
            super().__init__(func, backend, options)
            self.grad_and_value = DerivativeFunction(
                func, "grad_and_value", backend, **options
            )
            self.hvp_op = HessianVectorProductOp(func, backend, options)

        def make_node(self, x: Any, *args: Any) -> Any:
            x = as_float64(x)
            return Apply(self, [x, *data_inputs(args)], [pt.dscalar(), x.type()])

        def perform(
            self, node: Any, inputs: Sequence[Any], output_storage: Any
        ) -> None:
            try:
                grad, value = self.grad_and_value(*inputs)
            except NonScalarOutputError as err:
                msg = (
                    f"{err} With diffops.pytensor_op, pass output_ndim=<the number "
                    f"of dimensions of {function_name(self.func)}'s value> for an "
                    f"array-valued function."
                )
                raise NonScalarOutputError(msg) from err
            output_storage[0][0] = _owned(value)
            output_storage[1][0] = _owned(grad)

        def infer_shape(
            self, fgraph: Any, node: Any, input_shapes: Sequence[Any]
        ) -> list[Any]:
            return [(), input_shapes[0]]

        def L_op(
            self,
            inputs: Sequence[Any],
            outputs: Sequence[Any],
            output_grads: Sequence[Any],
        ) -> list[Any]:
            x, *args = inputs
            g_value, g_grad = output_grads
            # PyTensor calls L_op only when at least one output is connected.
            terms = []
            if not isinstance(g_value.type, DisconnectedType):
                terms.append(g_value * outputs[1])
            if not isinstance(g_grad.type, DisconnectedType):
                # d(g_grad · ∇f)/dx = H @ g_grad: a Hessian-vector product.
                terms.append(self.hvp_op(x, g_grad, *args))
            grad_x = terms[0] + terms[1] if len(terms) == 2 else terms[0]
            return [grad_x, *data_grads(self, inputs, 1)]

    class HessianVectorProductOp(_DiffopsOp):
        """``(x, v, *args) -> H(x) @ v`` for a scalar ``f``, never forming ``H``."""

        def __init__(self, func: Callable[..., Any], backend: str, options: Any):
            super().__init__(func, backend, options)
            self.hvp_grad_and_value = DerivativeFunction(
                func, "hvp_grad_and_value", backend, **options
            )

        def make_node(self, x: Any, v: Any, *args: Any) -> Any:
            x, v = as_float64(x), as_float64(v)
            return Apply(self, [x, v, *data_inputs(args)], [x.type()])

        def perform(
            self, node: Any, inputs: Sequence[Any], output_storage: Any
        ) -> None:
            x, v, *args = inputs
            hvp, _grad, _value = self.hvp_grad_and_value(x, *args)
            output_storage[0][0] = _owned(hvp(v))

        def infer_shape(
            self, fgraph: Any, node: Any, input_shapes: Sequence[Any]
        ) -> list[Any]:
            return [input_shapes[0]]

        def L_op(
            self,
            inputs: Sequence[Any],
            outputs: Sequence[Any],
            output_grads: Sequence[Any],
        ) -> list[Any]:
            comment = "third derivatives of a diffops Op are not available."
            return [
                grad_not_implemented(self, 0, inputs[0], comment),
                grad_not_implemented(self, 1, inputs[1], comment),
                *data_grads(self, inputs, 2),
            ]

    class ArrayFunctionOp(_DiffopsOp):
        """``f(x, *args)`` for an array-valued ``f`` of ``output_ndim`` dimensions.

        The gradient is :class:`VectorJacobianProductOp` (one ``vjp_and_value``
        evaluation).
        """

        def __init__(
            self,
            func: Callable[..., Any],
            backend: str,
            options: Any,
            output_ndim: int,
        ):
            super().__init__(func, backend, options)
            self.output_ndim = output_ndim
            self.vjp_op = VectorJacobianProductOp(func, backend, options)

        def make_node(self, x: Any, *args: Any) -> Any:
            x = as_float64(x)
            out = pt.TensorType("float64", shape=(None,) * self.output_ndim)()
            return Apply(self, [x, *data_inputs(args)], [out])

        def perform(
            self, node: Any, inputs: Sequence[Any], output_storage: Any
        ) -> None:
            # The value through the VJP operator: it is the one operator every
            # backend compiles for array functions, and the closure is dropped.
            _vjp, value = self.vjp_op.vjp_and_value(*inputs)
            if np.ndim(value) != self.output_ndim:
                msg = (
                    f"{function_name(self.func)} returned an array of shape "
                    f"{np.shape(value)}, but the Op was built with output_ndim="
                    f"{self.output_ndim}: pass output_ndim={np.ndim(value)} to "
                    f"diffops.pytensor_op."
                )
                raise ShapeMismatchError(msg)
            output_storage[0][0] = _owned(value)

        def L_op(
            self,
            inputs: Sequence[Any],
            outputs: Sequence[Any],
            output_grads: Sequence[Any],
        ) -> list[Any]:
            x, *args = inputs
            return [
                self.vjp_op(x, output_grads[0], *args),
                *data_grads(self, inputs, 1),
            ]

    class VectorJacobianProductOp(_DiffopsOp):
        """``(x, g, *args) -> g @ J(x)``: the VJP of an array-valued ``f``."""

        def __init__(self, func: Callable[..., Any], backend: str, options: Any):
            super().__init__(func, backend, options)
            self.vjp_and_value = DerivativeFunction(
                func, "vjp_and_value", backend, **options
            )

        def make_node(self, x: Any, g: Any, *args: Any) -> Any:
            x, g = as_float64(x), as_float64(g)
            return Apply(self, [x, g, *data_inputs(args)], [x.type()])

        def perform(
            self, node: Any, inputs: Sequence[Any], output_storage: Any
        ) -> None:
            x, g, *args = inputs
            vjp, _value = self.vjp_and_value(x, *args)
            output_storage[0][0] = _owned(vjp(g))

        def infer_shape(
            self, fgraph: Any, node: Any, input_shapes: Sequence[Any]
        ) -> list[Any]:
            return [input_shapes[0]]

        def L_op(
            self,
            inputs: Sequence[Any],
            outputs: Sequence[Any],
            output_grads: Sequence[Any],
        ) -> list[Any]:
            comment = "second derivatives of an array-valued diffops Op are not "
            comment += "available."
            return [
                grad_not_implemented(self, 0, inputs[0], comment),
                grad_not_implemented(self, 1, inputs[1], comment),
                *data_grads(self, inputs, 2),
            ]

    classes: dict[str, type] = {
        "ScalarFunctionOp": ScalarFunctionOp,
        "HessianVectorProductOp": HessianVectorProductOp,
        "ArrayFunctionOp": ArrayFunctionOp,
        "VectorJacobianProductOp": VectorJacobianProductOp,
    }
    for name, cls in classes.items():
        # Found as module attributes, so instances pickle by reference.
        cls.__module__ = __name__
        cls.__qualname__ = name
    return classes


def __getattr__(name: str) -> Any:
    # The Op classes exist once PyTensor is imported (first access builds them).
    if name in _OP_CLASSES:
        return _op_classes()[name]
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
    try:
        classes = _op_classes()
    except ImportError as err:
        msg = (
            f"diffops.pytensor_op needs PyTensor ({err}). Install it with PyMC: "
            f"`pip install pymc` (or `pip install diffops[pymc]`)."
        )
        raise ImportError(msg) from err
    if output_ndim == 0:
        op: Op = classes["ScalarFunctionOp"](func, backend, options)
    else:
        op = classes["ArrayFunctionOp"](func, backend, options, output_ndim)
    return op
