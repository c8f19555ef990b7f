"""The backend protocol: what a backend provides to diffops, and what is optional.

A backend is an instance of a :class:`Backend` subclass. It knows one array framework
and nothing about the NumPy boundary: :mod:`diffops.boundary` does every conversion,
check and closure wrapping for all backends alike, calling the hooks below.

Required:

- :attr:`Backend.name`, :attr:`Backend.framework` (the package to import, found
  without importing it), :attr:`Backend.extra` (the ``pip install diffops[extra]``);
- the operators themselves, at the framework level: each takes the user's function
  and returns ``d(x, *args) -> tuple`` in the order of the operator table
  (:mod:`diffops.operators`), with framework arrays in and out and product closures
  as plain framework callables. By default :meth:`Backend.operator` finds them as
  module-level functions named after the operators, in the module that defines the
  backend's class (the ``mici.autodiff`` layout).

Optional (the defaults suit a framework that works on NumPy arrays directly):

- :attr:`Backend.options` and :meth:`Backend.check`: the keyword options each
  operator takes, and what can be checked when a derivative function is built;
- :meth:`Backend.compile`: compile the per-call program (JAX: ``jax.jit``);
- :meth:`Backend.input_shape`: the one input shape generated code takes (SymNum);
- :meth:`Backend.run`: call a framework function so that float64 stays float64 (JAX:
  a ``jax.enable_x64`` scope for that call only);
- :meth:`Backend.to_framework`, :meth:`Backend.to_numpy`: move one array across;
- :meth:`Backend.cast`, :meth:`Backend.concat`, :attr:`Backend.pack_limit`: cast and
  pack outputs inside the compiled program (one host transfer per call);
- :meth:`Backend.apply_closure`: call a product closure (JAX: through one compiled
  function);
- :meth:`Backend.vectorize`: evaluate at a stack of points in one call (JAX: ``vmap``
  inside the same ``jit``; PyTorch: ``torch.func.vmap``); the default loops;
- :attr:`Backend.framework_arrays`, :meth:`Backend.is_framework_array`,
  :meth:`Backend.framework_dtype`, :meth:`Backend.framework_astype`,
  :meth:`Backend.framework_copy`: the
  ``as_numpy=False`` path that keeps the framework's own arrays;
- :meth:`Backend.sparsity`, :meth:`Backend.value_shape`, :meth:`Backend.products`,
  :meth:`Backend.gather`, :meth:`Backend.sparse_operator`: sparse Jacobians and
  Hessians (structure detection; colored products and decompression);
- :meth:`Backend.export`, :meth:`Backend.restore`, :meth:`Backend.function_recipe`:
  pickling (ship generated code; rebuild functions that pickle cannot store);
- :meth:`Backend.explain_error`: turn a framework's tracing error into a
  :class:`~diffops.errors.TracingError` with a hint;
- :meth:`Backend.namespace`: array operations for the example models.

Importing a backend module must not import its framework: import it inside the hooks,
on first use (``import diffops`` stays fast and a broken install of one framework
cannot break the others).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from diffops.errors import (
    DiffopsError,
    ForkedProcessError,
    UnknownOptionError,
    closest,
)
from diffops.operators import JACOBIAN_MODES

Function = Callable[..., Any]
"""A function of framework arrays."""
Options = Mapping[str, Any]
"""An operator's keyword options."""
InAxes = tuple[int | None, ...]
"""For batching: ``0`` for each stacked argument, ``None`` for shared ones."""

JACOBIAN_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "jacobian_and_value": ("mode",),
    "mhp_jacobian_and_value": ("mode",),
}
"""The options of backends whose only option is the Jacobian ``mode``."""


class Backend:
    """One array framework behind the NumPy boundary.

    Subclasses set the class attributes and override :meth:`operator`; every other
    hook has a default that suits a framework working on NumPy arrays.

    Attributes:
        name: Registry name, e.g. ``"jax"``.
        framework: Top-level package of the framework, e.g. ``"jax"``.
        extra: Name of the ``diffops[...]`` extra that installs it.
        options: Keyword options each operator takes, by operator name.
        framework_arrays: Whether ``as_numpy=False`` keeps the framework's arrays
            (JAX, PyTorch); NumPy-native backends ignore the option.
        fresh_outputs: Whether results never share memory with the input, so the
            boundary can skip that check.
        protect_input: Whether the user's function receives the input's own memory
            and could change it in place; the boundary then passes it a copy.
        pack_limit: Results with at most this many elements in all leave the
            compiled program as one flat array (``0``: never packed).
    """

    name: str
    framework: str
    extra: str
    options: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    framework_arrays: bool = False
    fresh_outputs: bool = False
    protect_input: bool = False
    pack_limit: int = 0

    @property
    def available(self) -> bool:
        """Whether the framework is installed (found without importing it)."""
        return importlib.util.find_spec(self.framework) is not None

    # -- required ------------------------------------------------------------------

    def operator(self, op_name: str, func: Function, **options: Any) -> Function:
        """The operator ``op_name`` of ``func`` at the framework level.

        The default looks up a function named after the operator in the module that
        defines the backend's class (the ``mici.autodiff`` layout: one module-level
        factory per operator, usable on its own with the framework's arrays).

        Args:
            op_name: Operator name, a key of :data:`diffops.operators.OPERATORS`.
            func: The user's function ``func(x, *args)``.
            **options: Options the operator takes (see :attr:`options`).

        Returns:
            ``d(x, *args)`` returning the operator's tuple (closure first, value
            last) in framework arrays.
        """
        module = sys.modules[type(self).__module__]
        factory: Callable[..., Function] = getattr(module, op_name)
        return factory(func, **options)

    # -- optional hooks ------------------------------------------------------------

    def check(self, op_name: str, func: Function, options: Mapping[str, Any]) -> None:
        """Check a function and its options when its derivative function is built.

        The default checks the options against :attr:`options`; backends that can
        say more before the first call (SymNum: the argument shapes) add to it.

        Args:
            op_name: Operator name.
            func: The user's function (not called).
            options: Keyword options given by the user.

        Raises:
            UnknownOptionError: (a ``TypeError``) for an option the operator does not
                take on this backend.
            ValueError: For an unknown Jacobian ``mode``.
        """
        allowed = self.options.get(op_name, ())
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            takes = f"takes only {allowed}" if allowed else "takes no options"
            hint = closest(unknown[0], allowed)
            msg = f"{op_name} on the {self.name} backend {takes}, not {unknown}.{hint}"
            raise UnknownOptionError(msg)
        if "mode" in options:
            check_jacobian_mode(options["mode"])

    def input_shape(
        self, op_name: str, func: Function, **options: Any
    ) -> tuple[int, ...] | None:
        """The one input shape the operator's code was generated for, if any.

        Backends that generate code for one shape (SymNum) return it, and the
        boundary checks every input against it; ``None`` (the default) means any
        shape.
        """
        return None

    def compile(self, program: Function, **options: Any) -> Function:
        """Compile the per-call program (default: unchanged).

        Args:
            program: Function of framework arrays.
            **options: The framework's compile options (JAX: :func:`jax.jit`'s
                keyword arguments), from ``jit_and_return_numpy_arrays``.
        """
        return program

    def run(self, function: Function, dtype: np.dtype, *args: Any) -> Any:
        """Call ``function(*args)`` so that it computes in ``dtype``'s precision.

        Args:
            function: Framework function.
            dtype: Float dtype of the input (float32 or float64).
            *args: Its arguments.

        Returns:
            What ``function`` returns.
        """
        return function(*args)

    def apply_closure(self, closure: Function, arg: Any) -> Any:
        """Apply a product closure returned by :meth:`operator` to ``arg``."""
        return closure(arg)

    def closure_applier(self) -> Callable[[Function, Any], Any]:
        """The function that applies one derivative program's product closures.

        Made once per program; the default is :meth:`apply_closure` (JAX: a compiled
        function of the program's own).
        """
        return self.apply_closure

    def trace(self, function: Function, *args: Any) -> Any:
        """Run ``function`` for what it records while traced, computing nothing.

        The default calls it (a framework without tracing computes it).
        """
        return function(*args)

    def argument_signature(self, arg: Any) -> Any:
        """Cache key of an extra argument that is not an array, number or container.

        Whatever the compiled program and the shapes of its results depend on; the
        default is the argument's type (frameworks without compiled programs).
        """
        return type(arg)

    def to_framework(self, arr: np.ndarray) -> Any:
        """A NumPy array as the framework's array (default: unchanged)."""
        return arr

    def to_framework_argument(self, arg: np.ndarray, dtype: np.dtype) -> Any:
        """A NumPy extra argument as the framework's array, for input of ``dtype``."""
        return self.to_framework(arg)

    def to_numpy(self, value: Any) -> np.ndarray:
        """A framework array (or number) as a NumPy array."""
        return np.asarray(value)

    def cast(self, value: Any, dtype: Any) -> Any:
        """Inside the program: ``value`` as a framework array of ``dtype``."""
        return value

    def concat(self, arrays: list[Any]) -> Any:
        """Inside the program: the arrays raveled and concatenated (for packing).

        The default works on NumPy arrays; backends that pack (``pack_limit > 0``)
        give their framework's own.
        """
        return np.concatenate([np.ravel(a) for a in arrays])

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

    def vectorize(
        self, op_name: str, func: Function, options: Options, in_axes: InAxes
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
            ``closure(M)`` (``M`` stacked the same way); or ``None`` (the default),
            in which case the boundary loops over the points.
        """
        return None

    can_detect_sparsity: bool = False
    """Whether :meth:`sparsity` can read structure from the function's program."""

    def sparsity(
        self,
        kind: str,
        func: Function,
        x: Any,
        args: tuple[Any, ...],
        options: Mapping[str, Any],
    ) -> Any:
        """The structural pattern of ``func``'s Jacobian or Hessian at ``x``'s shape.

        Args:
            kind: ``"jacobian"`` or ``"hessian"``.
            func: The user's function.
            x: A point (its shape and dtype matter, not its values).
            args: Extra arguments.
            options: The operator's options.

        Returns:
            A 0/1 ``scipy.sparse.csr_array`` of shape ``(prod(F), prod(S))`` (or
            ``(prod(S), prod(S))`` for a Hessian) that contains every entry that can
            be non-zero at any point.

        Raises:
            SparsityError: On backends without a traced program to read (the
                default).
        """
        from diffops.sparse import SparsityError

        msg = (
            f"sparsity='detect' reads the structure from a traced program, which the "
            f"{self.name!r} backend does not have. Pass the pattern itself "
            f"(sparsity=boolean array of the {kind}'s shape), or use the 'jax' "
            f"backend to detect it."
        )
        raise SparsityError(msg)

    def value_shape(
        self,
        op_name: str,
        func: Function,
        x: Any,
        args: tuple[Any, ...],
        options: Mapping[str, Any],
    ) -> tuple[int, ...]:
        """Shape ``F`` of ``func(x, *args)``.

        The default evaluates it once, through the backend's ``vjp_and_value``.
        """
        allowed = self.options.get("vjp_and_value", ())
        kept = {k: v for k, v in options.items() if k in allowed}
        raw = self.operator("vjp_and_value", func, **kept)
        _, value = raw(self.to_framework(x), *args)
        return tuple(np.shape(self.to_numpy(value)))

    def products(self, closure: Function, seeds: list[Any]) -> Any:
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

        The default computes the plan's products with the backend's own
        ``jvp_and_value``, ``vjp_and_value`` or ``hvp_grad_and_value`` (one product
        per color) and gathers the structural non-zeros; a dense plan, and operators
        that return a closure, run the dense operator and gather from its matrix.

        Args:
            op_name: The operator.
            func: The user's function.
            options: The operator's options.
            plan: A :class:`diffops.sparse.Plan`.

        Returns:
            ``program(x, *args)`` returning the operator's tuple with the matrix
            replaced by its non-zero values in CSR order.
        """
        from diffops.operators import OPERATORS
        from diffops.sparse import dense_positions

        if OPERATORS[op_name].closure is not None or plan.mode == "dense":
            dense = self.operator(op_name, func, **options)
            positions = dense_positions(plan)
            first = 1 if OPERATORS[op_name].closure is not None else 0

            def gathered(x: Any, *args: Any) -> tuple[Any, ...]:
                out = dense(x, *args)
                matrix = self.gather(out[first], positions)
                return (*out[:first], matrix, *out[first + 1 :])

            return gathered

        def build(product_op: str) -> Function:
            allowed = self.options.get(product_op, ())
            kept = {k: v for k, v in options.items() if k in allowed}
            return self.operator(product_op, func, **kept)

        forward = [self.to_framework(s) for s in plan.forward_seeds]
        reverse = [self.to_framework(s) for s in plan.reverse_seeds]
        if plan.kind == "hessian":
            hvp = build("hvp_grad_and_value")

            def symmetric(x: Any, *args: Any) -> tuple[Any, ...]:
                closure, grad, value = hvp(x, *args)
                products = self.products(closure, forward)
                return (self.gather(products, plan.index), grad, value)

            return symmetric
        jvp = build("jvp_and_value") if forward else None
        vjp = build("vjp_and_value") if reverse or jvp is None else None

        def colored(x: Any, *args: Any) -> tuple[Any, ...]:
            blocks = []
            value = None
            if jvp is not None:
                closure, value = jvp(x, *args)
                blocks.append(self.products(closure, forward))
            if vjp is not None:
                closure, value = vjp(x, *args)
                blocks.append(self.products(closure, reverse))
            products = np.concatenate([np.asarray(b).reshape(-1) for b in blocks])
            return (self.gather(products, plan.index), value)

        return colored

    def export(self, program: Function) -> Any:
        """Picklable state from which :meth:`restore` rebuilds ``program``.

        ``program`` is what :meth:`operator` returned. Backends whose operators are
        expensive to build and whose results can be shipped (SymNum's generated code)
        return it, so that an unpickled derivative function does not redo the work;
        the default ``None`` means: rebuild from the recipe.
        """
        return None

    def restore(self, state: Any) -> Function:
        """Rebuild a program from what :meth:`export` returned.

        The default :meth:`export` returns nothing to restore, so reaching this
        default means the two hooks disagree.

        Raises:
            TypeError: Always, for a backend that exports no state.
        """
        msg = (
            f"The {self.name} backend exports no state for pickled derivative "
            f"functions, so there is nothing to restore; override export and "
            f"restore together."
        )
        raise TypeError(msg)

    def function_recipe(
        self, func: Function
    ) -> tuple[Callable[..., Function], tuple[Any, ...]] | None:
        """How to rebuild the user's function in another process, if pickle cannot.

        Returns:
            ``(rebuild, args)`` such that ``rebuild(*args)`` gives the function back
            (its arguments are pickled in turn), or ``None`` (the default) to pickle
            ``func`` itself.
        """
        return None

    def explain_error(self, err: Exception, func: Function) -> Exception | None:
        """The exception to raise instead of ``err``, or ``None`` to keep it.

        Args:
            err: Exception raised while calling a derivative function.
            func: The user's function.

        Returns:
            Usually a :class:`~diffops.errors.TracingError` with a hint.
        """
        return None

    def namespace(self) -> SimpleNamespace:
        """Array operations for writing the example models with this framework.

        Returns:
            Namespace with ``sqrt, sin, cos, exp, log, log1p, sum, stack`` and
            ``const(array, like)`` (a constant in the framework's type and the
            dtype of ``like``).
        """
        msg = (
            f"The {self.name} backend has no namespace for the example models "
            f"(diffops.models); give its Backend a namespace() to run them on it."
        )
        raise NoNamespaceError(msg)

    def __repr__(self) -> str:
        return f"<diffops backend {self.name!r} ({type(self).__name__})>"


class NoNamespaceError(DiffopsError, LookupError):
    """A backend without array operations for the example models."""


def check_jacobian_mode(mode: object) -> None:
    """Raise ``ValueError`` unless ``mode`` names a Jacobian mode (any case).

    Args:
        mode: Jacobian mode requested by the user.

    Raises:
        ValueError: For an unknown mode.
    """
    if not (isinstance(mode, str) and mode.lower() in JACOBIAN_MODES):
        msg = (
            f"Jacobian mode {mode!r} is not one of {JACOBIAN_MODES}: 'forward' takes "
            f"one JVP per input, 'reverse' one VJP per output, 'auto' the fewer."
        )
        raise ValueError(msg)


def jacobian_mode(mode: str, n_in: int, n_out: int) -> str:
    """``"forward"`` or ``"reverse"``: the mode to use for a Jacobian.

    Args:
        mode: ``"auto"``, ``"forward"`` or ``"reverse"`` (any case).
        n_in: Number of input elements.
        n_out: Number of output elements.

    Returns:
        ``mode`` itself unless it is ``"auto"``; then forward when outputs outnumber
        inputs, reverse otherwise.
    """
    mode = mode.lower()
    if mode == "auto":
        return "forward" if n_out > n_in else "reverse"
    return mode


def example_namespace(xp: Any, **extra: Any) -> SimpleNamespace:
    """A model namespace from an array module plus framework-specific entries.

    Args:
        xp: Module with ``sqrt, sin, cos, exp, log, log1p, sum`` (e.g. ``jax.numpy``).
        **extra: ``stack`` and ``const``, and anything else.

    Returns:
        The namespace for :meth:`Backend.namespace`.
    """
    names = ("sqrt", "sin", "cos", "exp", "log", "log1p", "sum")
    return SimpleNamespace(**{name: getattr(xp, name) for name in names}, **extra)


def split_highest(derivative: Function, args: tuple[Any, ...]) -> Function:
    """``y -> (highest, rest)`` for a derivative function returning a tuple.

    Higher-order operators are the VJP of the lower-order one with the lower results
    carried along as auxiliary outputs (e.g. the MTP is the VJP of the Hessian pass,
    with gradient and value as auxiliaries); this splits the lower-order function's
    tuple into the differentiated output and the carried ones.

    Args:
        derivative: ``derivative(y, *args) -> (highest, *rest)``.
        args: The extra arguments.

    Returns:
        ``y -> (highest, rest)``.
    """

    def split(y: Any) -> tuple[Any, tuple[Any, ...]]:
        highest, *rest = derivative(y, *args)
        return highest, tuple(rest)

    return split


# ---------------------------------------------------------------------------------
# Frameworks in children created by os.fork()
#
# JAX cannot compute in a child forked after it computed in the parent: its runtime's
# thread pools do not exist in the child, and the child hangs (a program compiled in
# the parent may still run; compiling or running anything else blocks forever). So a
# fork handler records whether JAX's runtime existed at the fork, and every JAX path
# checks that record (require_not_forked) and raises instead of hanging. Having
# imported JAX, traced or jit-wrapped functions does not count: the runtime starts at
# the first computation.
#
# PyTorch works in such a child once the child computes on one intra-op thread (its
# OpenMP pool, too, is gone): the handler sets that in every fork child of a process
# that imported torch, as PyTorch's own data-loader workers do.

_FORKED_AFTER: set[str] = set()


def _jax_started() -> bool:
    """Whether JAX's runtime (its XLA clients and their threads) exists here."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    if bridge is None:
        return False
    backends = getattr(bridge, "_backends", None)
    # Read without JAX's lock, which a thread of the parent may have held at the
    # fork. A JAX without this record: assume the worst.
    return bool(backends) if isinstance(backends, dict) else True


def _after_fork_in_child() -> None:
    if _jax_started():
        _FORKED_AFTER.add("jax")
    torch = sys.modules.get("torch")
    set_num_threads = getattr(torch, "set_num_threads", None)
    if set_num_threads is not None:
        set_num_threads(1)


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def require_not_forked(framework: str) -> None:
    """Raise if this process was forked after ``framework`` computed in its parent.

    Args:
        framework: ``"jax"``.

    Raises:
        ForkedProcessError: (a ``RuntimeError``) naming the fix.
    """
    if framework in _FORKED_AFTER:
        msg = (
            f"This process was created with os.fork() after {framework} computed in "
            f"its parent; {framework} cannot compute in such a child (it would "
            f"hang). Start worker processes with the 'spawn' or 'forkserver' "
            f"method: call multiprocessing.set_start_method('spawn') once, at the "
            f"start of the main script (this also covers libraries that create their "
            f"own pools, such as Mici), or use "
            f"multiprocessing.get_context('spawn').Pool(). diffops derivative "
            f"functions pickle, so they can be sent to such workers."
        )
        raise ForkedProcessError(msg)
