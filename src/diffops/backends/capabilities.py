"""Optional capabilities of a backend, each with its default behaviour.

A backend opts into a capability by deriving from its class as well as from
:class:`~diffops.backends.protocol.Backend`; the boundary asks
``isinstance(backend, Capability)`` and otherwise uses the capability's default
instance (:func:`compiled`, :func:`batching`, ...), whose methods are the behaviour of
a backend without it.

- :class:`CompiledPrograms`: the per-call program is compiled; outputs are cast and
  small ones packed inside it; closures are applied by a compiled function; abstract
  tracing; cache keys for arguments (JAX).
- :class:`FrameworkArrays`: ``as_numpy=False`` keeps the framework's own arrays (JAX,
  PyTorch); without it the option changes nothing.
- :class:`Batching`: evaluation at a stack of points in one vectorised call (JAX,
  PyTorch); without it the points are looped over.
- :class:`SparseDerivatives`: sparse Jacobians and Hessians from colored products
  and, with ``can_detect``, structure detection (JAX).
- :class:`GeneratedCode`: code generated for one input shape, shipped when pickled
  (SymNum).
- :class:`ExampleModels`: array operations for the example models of the demo.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from diffops.errors import DiffopsError, SparsityError
from diffops.operators import OPERATORS

Function = Callable[..., Any]
Args = tuple[Any, ...]
"""Extra arguments of the user's function."""
Opts = Mapping[str, Any]
"""An operator's keyword options."""
Shape = tuple[int, ...]
InAxes = tuple[int | None, ...]
"""For batching: ``0`` for each stacked argument, ``None`` for shared ones."""


# ---------------------------------------------------------------------------------
# Compiled programs


class CompiledPrograms:
    """Capability: the per-call program is compiled.

    Attributes:
        pack_limit: Results with at most this many elements in all leave the
            compiled program as one flat array (``0``: never packed).
    """

    pack_limit: int = 0

    def compile(self, program: Function, **options: Any) -> Function:
        """Compile the per-call program (default: unchanged).

        A program that settles at its first call (JAX: its jit options) then has a
        ``settled`` attribute: the function to call instead.

        Args:
            program: Function of framework arrays.
            **options: The framework's compile options (JAX: :func:`jax.jit`'s
                keyword arguments).
        """
        return program

    def cast(self, value: Any, dtype: Any) -> Any:
        """Inside the program: ``value`` as a framework array of ``dtype``."""
        return value

    def concat(self, arrays: list[Any]) -> Any:
        """Inside the program: the arrays raveled and concatenated (for packing)."""
        return np.concatenate([np.ravel(a) for a in arrays])

    def closure_applier(self) -> Callable[[Function, Any], Any]:
        """The function that applies one derivative program's product closures.

        Made once per program; the default calls the closure (JAX: a compiled
        function of the program's own, so its compiled code goes with the program).
        """
        return _apply

    def trace(self, function: Function, *args: Any) -> Any:
        """Run ``function`` abstractly for the shapes of its results.

        The default calls it (a framework without tracing computes it).
        """
        return function(*args)

    def argument_signature(self, arg: Any) -> Any:
        """Cache key of an extra argument that is not an array, number or container.

        Whatever the compiled program and the shapes of its results depend on; the
        default is the argument's type.
        """
        return type(arg)


def _apply(closure: Function, arg: Any) -> Any:
    return closure(arg)


_NOT_COMPILED = CompiledPrograms()


def compiled(backend: Any) -> CompiledPrograms:
    """The backend's compiled-program hooks, or those of a plain backend."""
    return backend if isinstance(backend, CompiledPrograms) else _NOT_COMPILED


# ---------------------------------------------------------------------------------
# Framework arrays


class FrameworkArrays:
    """Capability: ``as_numpy=False`` keeps the framework's arrays (no host copy)."""

    def is_framework_array(self, value: Any) -> bool:
        """Whether ``value`` is an array of this framework (not NumPy)."""
        return False

    def framework_dtype(self, value: Any) -> np.dtype:
        """The NumPy equivalent of a framework array's dtype."""
        dtype: np.dtype = np.dtype(value.dtype)
        return dtype

    def framework_copy(self, value: Any) -> Any:
        """A copy of a framework array (default: unchanged, for immutable arrays)."""
        return value

    def framework_astype(self, value: Any, dtype: np.dtype) -> Any:
        """A framework array converted to ``dtype`` (a NumPy dtype)."""
        return value.astype(dtype)


def keeps_framework_arrays(backend: Any) -> bool:
    """Whether ``as_numpy=False`` means anything on this backend."""
    return isinstance(backend, FrameworkArrays)


# ---------------------------------------------------------------------------------
# Batching


class Batching:
    """Capability: a derivative function at a stack of points in one call."""

    def vectorize(
        self, op_name: str, func: Function, options: Mapping[str, Any], in_axes: InAxes
    ) -> Function | None:
        """The operator evaluated at a stack of points in one vectorised call.

        Args:
            op_name: Operator name.
            func: The user's function ``func(x, *args)``.
            options: The operator's options.
            in_axes: ``0`` for ``x`` and each extra argument stacked along its first
                axis, ``None`` for arguments shared by every point.

        Returns:
            ``program(X, *args)`` returning the operator's outputs stacked along a
            new first axis, with a product closure replaced by a batched closure
            ``closure(M)`` (``M`` stacked the same way); or ``None``, in which case
            the points are looped over.
        """
        return None


def vectorized(
    backend: Any,
    op_name: str,
    func: Function,
    options: Mapping[str, Any],
    in_axes: InAxes,
) -> Function | None:
    """``backend.vectorize(...)`` if the backend batches, else ``None`` (a loop)."""
    if not isinstance(backend, Batching):
        return None
    return backend.vectorize(op_name, func, options, in_axes)


# ---------------------------------------------------------------------------------
# Sparse derivatives


class Structure(NamedTuple):
    """A detected structure: the pattern and the products that can compute it.

    Attributes:
        pattern: 0/1 CSR array ``(n_out, n_in)`` holding every entry that can be
            non-zero.
        modes: The product modes the function supports: ``"forward"`` (JVPs) and
            ``"reverse"`` (VJPs) for Jacobians, ``"symmetric"`` (HVPs) for Hessians.
        value_shape: Shape ``F`` of the function's value, if detection read it with
            the operator's checks applied (then the value need not be traced or
            evaluated again to learn it); ``None``: unknown.
    """

    pattern: Any
    modes: tuple[str, ...]
    value_shape: tuple[int, ...] | None = None


class SparseDerivatives:
    """Capability: sparse Jacobians and Hessians from colored products.

    The defaults compute a plan's products with the backend's own
    ``jvp_and_value``, ``vjp_and_value`` or ``hvp_grad_and_value`` (a loop over the
    seeds) and gather the structural non-zeros in NumPy. With :attr:`can_detect`,
    :meth:`sparsity` reads the structure from the function (``sparsity="detect"``).

    Attributes:
        can_detect: Whether :meth:`sparsity` can read structure from the function.
        gathers_in_program: Whether the non-zeros of a colored or dense plan are
            gathered inside the backend's compiled program even when they leave as
            NumPy arrays (otherwise :meth:`diffops.sparse.Plan.finish` gathers them
            after it, in NumPy).
    """

    can_detect: bool = False
    gathers_in_program: bool = False
    # From Backend, which every backend with this capability also is.
    name: str
    operator: Callable[..., Function]
    to_framework: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]

    @property
    def _options(self) -> Mapping[str, tuple[str, ...]]:
        return getattr(self, "options", {})

    def sparsity(
        self, kind: str, func: Function, x: Any, args: Args, op: str
    ) -> Structure:
        """The structure of ``func``'s Jacobian or Hessian at ``x``'s shape.

        Args:
            kind: ``"jacobian"`` or ``"hessian"``.
            func: The user's function.
            x: A point (its shape and dtype matter, not its values).
            args: Extra arguments.
            op: The operator, whose checks of the value detection may apply.

        Returns:
            The pattern (a 0/1 ``scipy.sparse.csr_array`` of shape
            ``(prod(F), prod(S))``, or ``(prod(S), prod(S))`` for a Hessian,
            holding every entry that can be non-zero at any point), the modes, and
            the value's shape if detection learnt it.

        Raises:
            SparsityError: On backends without a traced program to read (the
                default).
        """
        msg = (
            f"sparsity='detect' reads the structure from a traced program, which the "
            f"{self.name!r} backend does not have. Pass the pattern itself "
            f"(sparsity=boolean array of the {kind}'s shape), or use the 'jax' "
            f"backend to detect it."
        )
        raise SparsityError(msg)

    def value_shape(
        self, op: str, func: Function, x: Any, args: Args, options: Opts
    ) -> Shape:
        """Shape ``F`` of ``func(x, *args)`` (default: evaluated once)."""
        allowed = self._options.get("vjp_and_value", ())
        kept = {k: v for k, v in options.items() if k in allowed}
        _, value = self.operator("vjp_and_value", func, **kept)(
            self.to_framework(x), *args
        )
        return tuple(np.shape(self.to_numpy(value)))

    def products(self, closure: Function, seeds: list[Any]) -> np.ndarray:
        """``closure`` applied to each seed, raveled and concatenated (a loop)."""
        if not seeds:
            return np.zeros(0)
        return np.concatenate([self.to_numpy(closure(s)).reshape(-1) for s in seeds])

    def gather(self, array: Any, index: np.ndarray) -> Any:
        """The entries ``index`` of ``array`` raveled (default: NumPy)."""
        return np.take(self.to_numpy(array).reshape(-1), index)

    def sparse_operator(
        self, op_name: str, func: Function, options: Mapping[str, Any], plan: Any
    ) -> Function:
        """The operator with its Jacobian or Hessian as decompressed values.

        A dense plan, and operators that return a closure, run the dense operator and
        gather from its matrix; otherwise one product per color and one gather.

        Args:
            op_name: The operator.
            func: The user's function.
            options: The operator's options.
            plan: A :class:`diffops.sparse.Plan`.

        Returns:
            ``program(x, *args)`` returning the operator's tuple with the matrix
            replaced by its non-zero values in CSR order.
        """
        first = 1 if OPERATORS[op_name].closure is not None else 0
        if first or plan.mode == "dense":
            dense = self.operator(op_name, func, **options)
            positions = plan.dense_positions()

            def gathered(x: Any, *args: Any) -> tuple[Any, ...]:
                out = dense(x, *args)
                if plan.gather_after or plan.full:  # Plan.finish gathers
                    matrix = self.to_numpy(out[first]).reshape(-1)
                else:
                    matrix = self.gather(out[first], positions)
                return (*out[:first], matrix, *out[first + 1 :])

            return gathered
        forward = [self.to_framework(np.array(s)) for s in plan.forward_seeds]
        reverse = [self.to_framework(np.array(s)) for s in plan.reverse_seeds]
        if plan.kind == "hessian":
            hvp = self._product_operator("hvp_grad_and_value", func, options)

            def symmetric(x: Any, *args: Any) -> tuple[Any, ...]:
                closure, grad, value = hvp(x, *args)
                products = self.products(closure, forward)
                steps = plan.substitution
                if plan.gather_after:
                    data = products  # Plan.finish gathers (and substitutes)
                elif steps is None:
                    data = self.gather(products, plan.index)
                else:
                    data = steps.finish(self.to_numpy(products))
                return (data, grad, value)

            return symmetric
        jvp = (
            self._product_operator("jvp_and_value", func, options) if forward else None
        )
        vjp = (
            self._product_operator("vjp_and_value", func, options)
            if reverse or jvp is None
            else None
        )

        def colored(x: Any, *args: Any) -> tuple[Any, ...]:
            blocks, value = [], None
            for operator, seeds in ((jvp, forward), (vjp, reverse)):
                if operator is not None:
                    closure, value = operator(x, *args)
                    blocks.append(self.products(closure, seeds))
            products = np.concatenate([np.asarray(b).reshape(-1) for b in blocks])
            if plan.gather_after:
                return (products, value)  # Plan.finish gathers
            return (self.gather(products, plan.index), value)

        return colored

    def _product_operator(
        self, product_op: str, func: Function, options: Mapping[str, Any]
    ) -> Function:
        allowed = self._options.get(product_op, ())
        return self.operator(
            product_op, func, **{k: v for k, v in options.items() if k in allowed}
        )


def sparse_support(backend: Any) -> SparseDerivatives:
    """The backend's sparse-derivative hooks.

    Raises:
        SparsityError: If the backend has none.
    """
    if isinstance(backend, SparseDerivatives):
        return backend
    msg = (
        f"The {backend.name!r} backend does not compute sparse Jacobians or "
        f"Hessians (sparsity=); use the dense operator, or a backend that does."
    )
    raise SparsityError(msg)


# ---------------------------------------------------------------------------------
# Generated code


class GeneratedCode:
    """Capability: code generated for one input shape, shipped when pickled."""

    def input_shape(
        self, op_name: str, func: Function, **options: Any
    ) -> tuple[int, ...] | None:
        """The one input shape the operator's code was generated for, if any.

        The boundary checks every input against it; ``None`` means any shape.
        """
        return None

    def export(self, program: Function) -> Any:
        """Picklable state from which :meth:`restore` rebuilds ``program``.

        ``program`` is what ``operator`` returned; shipping it spares the other
        process the work of building it (``None``: rebuild from the recipe).
        """
        return None

    def restore(self, state: Any) -> Function:
        """Rebuild a program from what :meth:`export` returned.

        Raises:
            TypeError: For a backend that exports no state (the two hooks disagree).
        """
        msg = (
            f"{type(self).__name__} exports no state for pickled derivative "
            f"functions, so there is nothing to restore; override export and "
            f"restore together."
        )
        raise TypeError(msg)

    def source(self, program: Function) -> str | None:
        """The generated source behind ``program``, if there is any (default: none)."""
        return None

    def function_recipe(
        self, func: Function
    ) -> tuple[Callable[..., Function], tuple[Any, ...]] | None:
        """How to rebuild the user's function in another process, if pickle cannot.

        Returns:
            ``(rebuild, args)`` such that ``rebuild(*args)`` gives the function back
            (its arguments are pickled in turn), or ``None`` to pickle ``func``.
        """
        return None


_NO_GENERATED_CODE = GeneratedCode()


def generated_code(backend: Any) -> GeneratedCode:
    """The backend's generated-code hooks, or those of a backend without any."""
    return backend if isinstance(backend, GeneratedCode) else _NO_GENERATED_CODE


# ---------------------------------------------------------------------------------
# Example models


class NoNamespaceError(DiffopsError, LookupError):
    """A backend without array operations for the example models."""


class ExampleModels:
    """Capability: array operations for writing the example models (the demo)."""

    def namespace(self) -> SimpleNamespace:
        """Array operations for writing the example models with this framework.

        By default those of the backend's primitives' array module
        (:attr:`diffops.backends.compose.Primitives.xp`), with its ``stack`` and
        ``asarray``.

        Returns:
            Namespace with ``sqrt, sin, cos, exp, log, log1p, sum, stack`` and
            ``const(array, like)`` (a constant in the framework's type and the
            dtype of ``like``).
        """
        xp = self.primitives().xp  # type: ignore[attr-defined]
        return example_namespace(
            xp, stack=xp.stack, const=lambda a, like: xp.asarray(a, dtype=like.dtype)
        )


def example_namespace(xp: Any, **extra: Any) -> SimpleNamespace:
    """A model namespace from an array module plus framework-specific entries.

    Args:
        xp: Module with ``sqrt, sin, cos, exp, log, log1p, sum`` (e.g. ``jax.numpy``).
        **extra: ``stack`` and ``const``, and anything else.

    Returns:
        The namespace for :meth:`ExampleModels.namespace`.
    """
    names = ("sqrt", "sin", "cos", "exp", "log", "log1p", "sum")
    return SimpleNamespace(**{name: getattr(xp, name) for name in names}, **extra)


def namespace_of(backend: Any) -> SimpleNamespace:
    """The backend's example-model operations.

    Raises:
        NoNamespaceError: If it has none.
    """
    if isinstance(backend, ExampleModels):
        return backend.namespace()
    msg = (
        f"The {backend.name} backend has no namespace for the example models "
        f"(diffops.models); give its Backend the ExampleModels capability to run "
        f"them on it."
    )
    raise NoNamespaceError(msg)
