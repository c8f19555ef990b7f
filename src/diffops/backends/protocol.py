"""The backend protocol: the few hooks every backend must think about.

A backend is an instance of a :class:`Backend` subclass. It knows one array framework
and nothing about the NumPy boundary: :mod:`diffops.boundary` does every conversion,
check and closure wrapping for all backends alike, calling these hooks:

- :attr:`Backend.name`, :attr:`Backend.framework` (the package to import, found
  without importing it), :attr:`Backend.extra` (the ``pip install diffops[extra]``);
- the operators: :meth:`Backend.primitives` gives the framework's primitives, from
  which :mod:`diffops.backends.compose` builds every operator (or a backend overrides
  :meth:`Backend.operator`, as SymNum's code generation does);
- :attr:`Backend.options` and :meth:`Backend.check`: the keyword options each
  operator takes, checked when a derivative function is built;
- :meth:`Backend.run`: call a framework function so that float64 stays float64;
- :meth:`Backend.to_framework`, :meth:`Backend.to_framework_argument`,
  :meth:`Backend.to_numpy`: move one array across;
- :meth:`Backend.explain_error`: a framework's tracing error as a
  :class:`~diffops.errors.TracingError` with a hint.

Everything else is an optional capability a backend opts into by also deriving from
a class of :mod:`diffops.backends.capabilities` (compiled programs, framework
arrays, batching, sparse derivatives, generated code, example models); each
capability's default behaviour lives there, next to it.

Importing a backend module must not import its framework: import it inside the hooks,
on first use (``import diffops`` stays fast and a broken install of one framework
cannot break the others).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from diffops.backends import compose
from diffops.backends.support import check_jacobian_mode
from diffops.errors import UnknownOptionError, closest

Function = Callable[..., Any]
"""A function of framework arrays."""
Options = Mapping[str, Any]
"""An operator's keyword options."""


class Backend:
    """One array framework behind the NumPy boundary.

    Attributes:
        name: Registry name, e.g. ``"jax"``.
        framework: Top-level package of the framework, e.g. ``"jax"``.
        extra: Name of the ``diffops[...]`` extra that installs it.
        options: Keyword options each operator takes, by operator name.
        fresh_outputs: Whether results never share memory with the input, so the
            boundary can skip that check.
        protect_input: Whether the user's function receives the input's own memory
            and could change it in place; the boundary then passes it a copy.
        title: The framework's name in messages, e.g. ``"PyTorch"``.
        write_with: How to write functions for it, for hints (completes "write f
            ..."), e.g. ``"with torch operations (torch.sin, ...) on the tensor"``.
        numpy_markers: Words of the errors raised when a plain NumPy function meets
            this framework's arrays (also recognised: errors raised inside NumPy).
    """

    name: str
    framework: str
    extra: str
    title: str = ""
    write_with: str = ""
    numpy_markers: tuple[str, ...] = ()
    options: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    fresh_outputs: bool = False
    protect_input: bool = False

    @property
    def available(self) -> bool:
        """Whether the framework is installed (found without importing it)."""
        return importlib.util.find_spec(self.framework) is not None

    def primitives(self) -> compose.Primitives:
        """The framework's primitives, from which every operator is composed.

        Raises:
            NotImplementedError: For backends that override :meth:`operator`.
        """
        msg = f"The {self.name} backend builds its operators itself."
        raise NotImplementedError(msg)

    def operator(self, op_name: str, func: Function, **options: Any) -> Function:
        """The operator ``op_name`` of ``func`` at the framework level.

        Args:
            op_name: Operator name, a key of :data:`diffops.operators.OPERATORS`.
            func: The user's function ``func(x, *args)``.
            **options: Options the operator takes (see :attr:`options`).

        Returns:
            ``d(x, *args)`` returning the operator's tuple (closure first, value
            last) in framework arrays.
        """
        return compose.build(self.primitives(), op_name, func, **options)

    def check(self, op_name: str, func: Function, options: Options) -> None:
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

    def to_framework(self, arr: np.ndarray) -> Any:
        """A NumPy array as the framework's array (default: unchanged)."""
        return arr

    def to_framework_argument(self, arg: np.ndarray, dtype: np.dtype) -> Any:
        """A NumPy extra argument as the framework's array, for input of ``dtype``."""
        return self.to_framework(arg)

    def to_numpy(self, value: Any) -> np.ndarray:
        """A framework array (or number) as a NumPy array."""
        return np.asarray(value)

    def explain_error(self, err: Exception, func: Function) -> Exception | None:
        """The exception to raise instead of ``err``, or ``None`` to keep it.

        Args:
            err: Exception raised while calling a derivative function.
            func: The user's function.

        Returns:
            Usually a :class:`~diffops.errors.TracingError` with a hint.
        """
        return None

    def overrides(self, hook: str) -> bool:
        """Whether this backend's class overrides one of the protocol's hooks."""
        return getattr(type(self), hook) is not getattr(Backend, hook)

    def __repr__(self) -> str:
        return f"<diffops backend {self.name!r} ({type(self).__name__})>"
