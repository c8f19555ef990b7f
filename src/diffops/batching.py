"""Batched evaluation: one derivative function at a stack of points.

``diffops.batched(d)(X)`` evaluates the derivative function ``d`` at every point of
``X`` (shape ``(B,) + S``) and returns the outputs stacked along a new first axis:
value ``(B,) + F``, gradient ``(B,) + S``, Hessian ``(B,) + S + S``, ...; a product
closure becomes a batched closure taking ``(B,) + arg_shape``. A sparse Jacobian or
Hessian (``sparsity=``) becomes a list of ``B`` ``scipy.sparse.csr_array`` results,
one per point, computed point by point on every backend. Backends that can
vectorise (:meth:`~diffops.backends.protocol.Backend.vectorize`: ``vmap`` inside the
same ``jit`` on JAX, ``torch.func.vmap`` on PyTorch) do it in one call; otherwise, or
when the function cannot be vectorised, the points are evaluated one by one. Results
cross the same NumPy boundary as single calls.
"""

from __future__ import annotations

import _thread
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diffops.backends.capabilities import vectorized
from diffops.boundary import ShapedClosure, as_input_array, explain, unaliased
from diffops.boundary.inputs import framework_arguments
from diffops.derivative import DerivativeFunction
from diffops.errors import ShapeMismatchError
from diffops.operators import Closure, shape_of


class BatchShapeWarning(UserWarning):
    """A stack of points passed to a batched function looks like a single point."""


class BatchedClosure(ShapedClosure):
    """A product closure of a batched evaluation: one product per point.

    Calling it with ``M`` of shape ``(B,) + arg_shape`` returns the products stacked,
    shape ``(B,) + out_shape``.
    """

    __slots__ = ("_apply",)

    def __init__(
        self,
        apply: Callable[[np.ndarray], Any],
        name: str,
        arg_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        dtype: np.dtype,
    ):
        super().__init__(name, arg_shape, out_shape, dtype)
        self._what = f"argument of the batched {name}"
        self._apply = apply

    def __call__(self, m: Any) -> np.ndarray:
        """Apply the product at every point.

        Args:
            m: Array of shape :attr:`arg_shape`.

        Returns:
            Array of shape :attr:`out_shape` and the input's dtype.
        """
        arr = self._argument(m)
        result: np.ndarray = self._result(np.asarray(self._apply(arr)), arr)
        return result

    def _wrong_shape(self, shape: tuple[int, ...]) -> None:
        msg = (
            f"The argument of the batched {self.__name__} has shape {shape}, but "
            f"shape {self._arg_shape} is required: one {self.__name__} argument per "
            f"point, stacked along the first axis."
        )
        raise ShapeMismatchError(msg)

    def __repr__(self) -> str:
        return (
            f"<batched {self.__name__} closure: takes shape {self._arg_shape}, "
            f"returns shape {self._out_shape}, dtype {self._dtype}>"
        )


class BatchedDerivativeFunction:
    """A derivative function evaluated at stacks of points.

    Attributes:
        derivative: The single-point derivative function.
        batched_args: Indices of the extra arguments that are stacked along their
            first axis (one per point); the others are shared by every point.
    """

    def __init__(
        self, derivative: DerivativeFunction, batched_args: Sequence[int] = ()
    ):
        if not isinstance(derivative, DerivativeFunction):
            msg = (
                f"batched needs a derivative function built by diffops (e.g. "
                f"diffops.grad_and_value(f)), not {type(derivative).__name__}."
            )
            raise TypeError(msg)
        self.derivative = derivative
        self.batched_args = tuple(int(i) for i in batched_args)
        self._programs: dict[tuple[int | None, ...], Any] = {}
        self._lock = _thread.allocate_lock()
        self._warned = False
        self._point_shape: tuple[int, ...] | None = None
        self.__name__ = f"batched_{derivative.__name__}"

    def __repr__(self) -> str:
        extra = f", batched_args={self.batched_args}" if self.batched_args else ""
        return f"batched({self.derivative!r}{extra})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The recipe, like the derivative function's: compiled again where unpickled.
        return (BatchedDerivativeFunction, (self.derivative, self.batched_args))

    def __call__(self, xs: Any, *args: Any) -> tuple[Any, ...]:
        """Evaluate at every point of ``xs``.

        Args:
            xs: Points stacked along the first axis, shape ``(B,) + S``.
            *args: Extra arguments; those in :attr:`batched_args` have a leading
                axis of length ``B``.

        Returns:
            The operator's tuple, each array stacked: shape ``(B,) + ...``; a closure
            becomes a :class:`BatchedClosure`.
        """
        d = self.derivative
        copy = d.op.closure is not None or d.backend_object.protect_input
        xs = as_input_array(xs, copy=copy, what="stack of points")
        if xs.ndim == 0 or xs.shape[0] == 0:
            msg = (
                f"batched evaluation needs at least one point, stacked along a first "
                f"axis: shape (B,) + S with B >= 1; got shape {xs.shape}. Call the "
                f"derivative function itself for a single point."
            )
            raise ShapeMismatchError(msg)
        self._check_not_one_point(xs.shape)
        if copy:  # closures keep their inputs, as for single calls
            args = tuple([a.copy() if isinstance(a, np.ndarray) else a for a in args])
        self._check_args(xs.shape[0], args)
        self._point_shape = xs.shape[1:]
        in_axes = (
            0,
            *[0 if i in self.batched_args else None for i in range(len(args))],
        )
        # Sparse results are built point by point (a list of CSR arrays).
        program = (
            None if d.options.get("sparsity") is not None else (self._program(in_axes))
        )
        if program is None:
            out = self._looped(xs, args)
        else:
            try:
                out = self._vectorized(program, xs, args)
            except Exception as err:  # the function may not be vectorisable
                out = self._looped(xs, args)
                if not self._warned:
                    self._warned = True
                    msg = (
                        f"{d!r} could not be vectorised on the {d.backend} backend "
                        f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                        f"its points are evaluated one by one instead."
                    )
                    warnings.warn(msg, RuntimeWarning, stacklevel=2)
        if d.op.closure is not None:
            # A batched closure pickles as the call that made it (``_reapplied``).
            out[0]._source = (self, xs, args)
        return out

    def _check_not_one_point(self, shape: tuple[int, ...]) -> None:
        """Refuse (fixed input shape) or warn about a stack that looks like one point.

        ``X`` of shape ``(4,)`` is four points of shape ``()``; when the function's
        points are known to have shape ``(4,)`` (generated code's fixed shape, or the
        shape of earlier calls), that is probably one point, not four.
        """
        d = self.derivative
        fixed = d.fixed_shape
        known = fixed if fixed is not None else self._point_shape or d.point_shape
        if not known or shape != known:
            return
        hint = (
            f"batched({d.__name__}) takes points stacked along a new first axis, "
            f"shape (B,) + S, so shape {shape} is {shape[0]} points of shape "
            f"{shape[1:]}; but {d.__name__}'s points have shape {known}, so this is "
            f"probably one point. Pass X[None] (shape {(1, *shape)}) for a batch of "
            f"one, or call {d.__name__} itself."
        )
        if fixed:
            raise ShapeMismatchError(hint)
        warnings.warn(hint, BatchShapeWarning, stacklevel=3)

    def _check_args(self, size: int, args: tuple[Any, ...]) -> None:
        for i in self.batched_args:
            if not 0 <= i < len(args):
                msg = (
                    f"batched_args names extra argument {i}, but the call has "
                    f"{len(args)} extra argument(s)."
                )
                raise ShapeMismatchError(msg)
            shape = np.shape(args[i])
            if not shape or shape[0] != size:
                msg = (
                    f"Extra argument {i} is batched, so its first axis must have one "
                    f"entry per point ({size}), but its shape is {shape}."
                )
                raise ShapeMismatchError(msg)

    def _program(self, in_axes: tuple[int | None, ...]) -> Any:
        d = self.derivative
        if in_axes not in self._programs:
            with self._lock:
                if in_axes not in self._programs:
                    self._programs[in_axes] = vectorized(
                        d.backend_object, d.op_name, d.func, d.options, in_axes
                    )
        return self._programs[in_axes]

    def _vectorized(
        self, program: Any, xs: np.ndarray, args: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        d = self.derivative
        backend = d.backend_object
        dtype = xs.dtype
        fargs = framework_arguments(backend, args, dtype)
        try:
            out = backend.run(program, dtype, backend.to_framework(xs), *fargs)
        except Exception as err:
            better = explain(backend, err, d.func)
            if better is None:
                raise
            raise better from err
        op = d.op
        first = 1 if op.closure is not None else 0
        arrays = []
        for o in out[first:]:
            r = backend.to_numpy(o)
            if r.dtype != dtype:
                r = r.astype(dtype)
            arrays.append(unaliased(r, xs))
        if op.closure is None:
            return tuple(arrays)
        closure = out[0]

        def apply(m: np.ndarray) -> Any:
            product = backend.run(closure, dtype, backend.to_framework(m))
            return backend.to_numpy(product)

        return (self._closure(apply, op.closure, xs, arrays[-1]), *arrays)

    def _looped(self, xs: np.ndarray, args: tuple[Any, ...]) -> tuple[Any, ...]:
        d = self.derivative
        if not self.batched_args:
            results = [d(x, *args) for x in xs]
        else:
            results = []
            for n in range(xs.shape[0]):
                point_args = tuple(
                    a[n] if i in self.batched_args else a for i, a in enumerate(args)
                )
                results.append(d(xs[n], *point_args))
        op = d.op
        first = 1 if op.closure is not None else 0
        dtype = xs.dtype
        arrays: list[Any] = []
        for k in range(first, op.n_outputs):
            if hasattr(results[0][k], "tocsr"):  # a sparse matrix per point
                arrays.append([r[k] for r in results])
                continue
            stacked = np.stack([np.asarray(r[k]) for r in results])
            arrays.append(stacked.astype(dtype, copy=False))
        if op.closure is None:
            return tuple(arrays)
        closures = [r[0] for r in results]

        def apply(m: np.ndarray) -> Any:
            return np.stack([c(m[n]) for n, c in enumerate(closures)])

        return (self._closure(apply, op.closure, xs, arrays[-1]), *arrays)

    @staticmethod
    def _closure(
        apply: Callable[[np.ndarray], Any],
        spec: Closure,
        xs: np.ndarray,
        values: np.ndarray,
    ) -> BatchedClosure:
        size, s, f = xs.shape[0], xs.shape[1:], values.shape[1:]
        return BatchedClosure(
            apply,
            spec.name,
            (size, *shape_of(spec.arg, s, f)),
            (size, *shape_of(spec.out, s, f)),
            xs.dtype,
        )


def batched(
    derivative: DerivativeFunction, *, batched_args: Sequence[int] = ()
) -> BatchedDerivativeFunction:
    """Evaluate a derivative function at a stack of points.

    ``batched(d)(X, *args)`` returns what ``d(X[b], *args)`` returns for every ``b``,
    each array stacked along a new first axis: for ``X`` of shape ``(B,) + S``, the
    value has shape ``(B,) + F``, the gradient ``(B,) + S``, the Hessian
    ``(B,) + S + S``; a closure takes ``(B,) + arg_shape`` and returns
    ``(B,) + out_shape``. On ``jax`` this is one compiled call (``vmap`` inside the
    ``jit``), on ``torch`` ``torch.func.vmap`` where the function allows it (otherwise
    a loop, with a one-time warning), elsewhere a loop. A sparse Jacobian or Hessian
    (``sparsity=``) is returned as a list of ``B`` CSR arrays, one per point.

    Args:
        derivative: A derivative function built by diffops.
        batched_args: Indices of the extra arguments that hold one entry per point
            along their first axis; the other extra arguments are shared.

    Returns:
        The batched derivative function.

    Raises:
        TypeError: If ``derivative`` was not built by diffops.

    >>> grads = diffops.batched(diffops.grad_and_value(f))(X)  # doctest: +SKIP
    """
    return BatchedDerivativeFunction(derivative, batched_args)
