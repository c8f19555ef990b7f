"""The PyTensor ``Op`` classes behind :func:`diffops.pytensor.pytensor_op`.

This module imports PyTensor; :mod:`diffops.pytensor` imports it only when an Op is
first built, so ``import diffops.pytensor`` stays free of PyTensor. The classes are
defined at module level, so Ops pickle by reference to them (PyMC pickles its step
methods for worker processes started with ``spawn`` or ``forkserver``).

- :class:`ScalarFunctionOp`: a scalar ``f``; outputs the value and the gradient,
  computed together by ``grad_and_value``; its gradient graph reads the second
  output, and second derivatives are :class:`HessianVectorProductOp` s.
- :class:`ArrayFunctionOp`: an array-valued ``f``; its gradient is a
  :class:`VectorJacobianProductOp` applying ``vjp_and_value``'s closure.

Every output is a fresh, writable float64 array that PyTensor may overwrite in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor import gradient
from pytensor.graph import basic, op

from diffops.derivative import DerivativeFunction
from diffops.errors import NonScalarOutputError, ShapeMismatchError, function_name

# PyTensor's graph objects are typed loosely here: the Ops take extra arguments after
# ``x``, which PyTensor's ``make_node(*inputs)`` stubs cannot express.
Apply: Any = basic.Apply
OpBase: Any = op.Op
DisconnectedType: Any = gradient.DisconnectedType
grad_not_implemented: Any = gradient.grad_not_implemented

NOT_DIFFERENTIATED = (
    "diffops differentiates with respect to the first argument only; the extra "
    "arguments (data) are passed through undifferentiated."
)


def owned(value: Any) -> np.ndarray:
    """A fresh, writable float64 array (PyTensor may overwrite outputs in place).

    Args:
        value: An array or number.

    Returns:
        A copy as a float64 array.
    """
    return np.array(value, dtype=np.float64, copy=True)


def as_float64(x: Any) -> Any:
    """``x`` as a float64 PyTensor variable (cast in the graph if needed).

    Args:
        x: A PyTensor variable or anything ``as_tensor_variable`` takes.

    Returns:
        The variable.
    """
    x = pt.as_tensor_variable(x)
    return x if x.dtype == "float64" else pt.cast(x, "float64")


def data_inputs(args: Sequence[Any]) -> list[Any]:
    """The extra arguments as PyTensor variables."""
    return [pt.as_tensor_variable(a) for a in args]


def data_grads(owner: Any, inputs: Sequence[Any], first: int) -> list[Any]:
    """Gradients for the inputs from ``first`` on (the data): not differentiated."""
    return [
        grad_not_implemented(owner, i, inputs[i], NOT_DIFFERENTIATED)
        for i in range(first, len(inputs))
    ]


def no_gradients(owner: Any, inputs: Sequence[Any], comment: str) -> list[Any]:
    """Gradients of an Op of ``(x, v, *args)`` that has none: ``comment`` says why."""
    return [
        grad_not_implemented(owner, 0, inputs[0], comment),
        grad_not_implemented(owner, 1, inputs[1], comment),
        *data_grads(owner, inputs, 2),
    ]


class DiffopsOp(OpBase):  # type: ignore[misc]
    """Shared parts: the recipe and the name shown in graphs.

    Instances pickle with their derivative functions, which pickle as their recipes
    and compile again where they are unpickled.

    Args:
        func: The user's function ``func(x, *args)``.
        backend: Backend name.
        options: Backend options.
    """

    def __init__(self, func: Callable[..., Any], backend: str, options: Any):
        self.func = func
        self.backend = backend
        self.options = dict(options)

    def __str__(self) -> str:
        name = function_name(self.func)
        return f"{type(self).__name__}{{{name}, backend={self.backend!r}}}"

    def derivative(self, op_name: str) -> DerivativeFunction:
        """The diffops derivative function ``op_name`` of the function."""
        return DerivativeFunction(self.func, op_name, self.backend, **self.options)


class ScalarFunctionOp(DiffopsOp):
    """``f(x, *args)`` for a scalar ``f``: outputs ``(value, grad)``.

    Calling the Op returns the value (``default_output = 0``); the gradient graph
    reads the second output, so the value and gradient at a point cost one
    ``grad_and_value`` evaluation.
    """

    default_output = 0

    def __init__(self, func: Callable[..., Any], backend: str, options: Any):
        super().__init__(func, backend, options)
        self.grad_and_value = self.derivative("grad_and_value")
        self.hvp_op = HessianVectorProductOp(func, backend, options)

    def make_node(self, x: Any, *args: Any) -> Any:
        """The graph node of ``op(x, ...)`` (PyTensor's ``Op.make_node``)."""
        x = as_float64(x)
        return Apply(self, [x, *data_inputs(args)], [pt.dscalar(), x.type()])

    def perform(self, node: Any, inputs: Sequence[Any], output_storage: Any) -> None:
        """Compute the outputs with diffops (PyTensor's ``Op.perform``)."""
        try:
            grad, value = self.grad_and_value(*inputs)
        except NonScalarOutputError as err:
            msg = (
                f"{err} With diffops.pytensor_op, pass output_ndim=<the number of "
                f"dimensions of {function_name(self.func)}'s value> for an "
                f"array-valued function."
            )
            raise NonScalarOutputError(msg) from err
        output_storage[0][0] = owned(value)
        output_storage[1][0] = owned(grad)

    def infer_shape(
        self, fgraph: Any, node: Any, input_shapes: Sequence[Any]
    ) -> list[Any]:
        """The output shapes from the input shapes."""
        return [(), input_shapes[0]]

    def L_op(
        self,
        inputs: Sequence[Any],
        outputs: Sequence[Any],
        output_grads: Sequence[Any],
    ) -> list[Any]:
        """The gradient with respect to the inputs (PyTensor's ``Op.L_op``)."""
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


class HessianVectorProductOp(DiffopsOp):
    """``(x, v, *args) -> H(x) @ v`` for a scalar ``f``, never forming ``H``."""

    def __init__(self, func: Callable[..., Any], backend: str, options: Any):
        super().__init__(func, backend, options)
        self.hvp_grad_and_value = self.derivative("hvp_grad_and_value")

    def make_node(self, x: Any, v: Any, *args: Any) -> Any:
        """The graph node of ``op(x, ...)`` (PyTensor's ``Op.make_node``)."""
        x, v = as_float64(x), as_float64(v)
        return Apply(self, [x, v, *data_inputs(args)], [x.type()])

    def perform(self, node: Any, inputs: Sequence[Any], output_storage: Any) -> None:
        """Compute the outputs with diffops (PyTensor's ``Op.perform``)."""
        x, v, *args = inputs
        hvp, _grad, _value = self.hvp_grad_and_value(x, *args)
        output_storage[0][0] = owned(hvp(v))

    def infer_shape(
        self, fgraph: Any, node: Any, input_shapes: Sequence[Any]
    ) -> list[Any]:
        """The output shapes from the input shapes."""
        return [input_shapes[0]]

    def L_op(
        self,
        inputs: Sequence[Any],
        outputs: Sequence[Any],
        output_grads: Sequence[Any],
    ) -> list[Any]:
        """The gradient with respect to the inputs (PyTensor's ``Op.L_op``)."""
        comment = "third derivatives of a diffops Op are not available."
        return no_gradients(self, inputs, comment)


class ArrayFunctionOp(DiffopsOp):
    """``f(x, *args)`` for an array-valued ``f`` of ``output_ndim`` dimensions.

    The gradient is :class:`VectorJacobianProductOp` (one ``vjp_and_value``
    evaluation).

    Args:
        func: The user's function.
        backend: Backend name.
        options: Backend options.
        output_ndim: Number of dimensions of the value.
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
        """The graph node of ``op(x, ...)`` (PyTensor's ``Op.make_node``)."""
        x = as_float64(x)
        out = pt.TensorType("float64", shape=(None,) * self.output_ndim)()
        return Apply(self, [x, *data_inputs(args)], [out])

    def perform(self, node: Any, inputs: Sequence[Any], output_storage: Any) -> None:
        """Compute the outputs with diffops (PyTensor's ``Op.perform``)."""
        # The value through the VJP operator: it is the one operator every backend
        # compiles for array functions, and the closure is dropped.
        _vjp, value = self.vjp_op.vjp_and_value(*inputs)
        if np.ndim(value) != self.output_ndim:
            msg = (
                f"{function_name(self.func)} returned an array of shape "
                f"{np.shape(value)}, but the Op was built with output_ndim="
                f"{self.output_ndim}: pass output_ndim={np.ndim(value)} to "
                f"diffops.pytensor_op."
            )
            raise ShapeMismatchError(msg)
        output_storage[0][0] = owned(value)

    def L_op(
        self,
        inputs: Sequence[Any],
        outputs: Sequence[Any],
        output_grads: Sequence[Any],
    ) -> list[Any]:
        """The gradient with respect to the inputs (PyTensor's ``Op.L_op``)."""
        x, *args = inputs
        return [self.vjp_op(x, output_grads[0], *args), *data_grads(self, inputs, 1)]


class VectorJacobianProductOp(DiffopsOp):
    """``(x, g, *args) -> g @ J(x)``: the VJP of an array-valued ``f``."""

    def __init__(self, func: Callable[..., Any], backend: str, options: Any):
        super().__init__(func, backend, options)
        self.vjp_and_value = self.derivative("vjp_and_value")

    def make_node(self, x: Any, g: Any, *args: Any) -> Any:
        """The graph node of ``op(x, ...)`` (PyTensor's ``Op.make_node``)."""
        x, g = as_float64(x), as_float64(g)
        return Apply(self, [x, g, *data_inputs(args)], [x.type()])

    def perform(self, node: Any, inputs: Sequence[Any], output_storage: Any) -> None:
        """Compute the outputs with diffops (PyTensor's ``Op.perform``)."""
        x, g, *args = inputs
        vjp, _value = self.vjp_and_value(x, *args)
        output_storage[0][0] = owned(vjp(g))

    def infer_shape(
        self, fgraph: Any, node: Any, input_shapes: Sequence[Any]
    ) -> list[Any]:
        """The output shapes from the input shapes."""
        return [input_shapes[0]]

    def L_op(
        self,
        inputs: Sequence[Any],
        outputs: Sequence[Any],
        output_grads: Sequence[Any],
    ) -> list[Any]:
        """The gradient with respect to the inputs (PyTensor's ``Op.L_op``)."""
        comment = "second derivatives of an array-valued diffops Op are not available."
        return no_gradients(self, inputs, comment)
