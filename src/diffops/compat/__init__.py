"""The ``mici.autodiff`` compatibility layer, in one place.

Mici's names with Mici's signatures: :class:`AutodiffBackend` records,
:func:`get_backend`, :func:`register_backend`, :func:`wrap_function`,
:func:`autodiff_fallback`, and the modules ``diffops.jax_wrapper``,
``diffops.autograd_wrapper``, ``diffops.symnum_wrapper`` and ``diffops.torch_wrapper``
(each module's attributes come from :func:`wrapper_module`): one factory per
operator, at the framework level, the ``*_AVAILABLE`` flags, and the function
wrappers ``return_numpy_arrays`` and ``jit_and_return_numpy_arrays``
(:class:`~diffops.compat.numpy_function.NumpyFunction`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any, NamedTuple

from diffops import registry
from diffops.backends.capabilities import generated_code
from diffops.backends.modules import ModuleBackend
from diffops.backends.protocol import Backend
from diffops.compat.numpy_function import NumpyFunction
from diffops.derivative import DerivativeFunction, check_operator
from diffops.errors import MissingDerivativeError, require_shape
from diffops.operators import ALL_DIFF_OPS, DIFF_OPS, OPERATORS

__all__ = [
    "DIFF_OPS",
    "AutodiffBackend",
    "NumpyFunction",
    "autodiff_fallback",
    "get_backend",
    "register_backend",
    "supported_ops",
    "wrap_function",
    "wrapper_module",
]

Function = Callable[..., Any]


class AutodiffBackend(NamedTuple):
    """A registered automatic differentiation backend, as ``mici.autodiff`` has it.

    Attributes:
        module: Module defining one factory per operator name; each takes the user's
            function and returns a derivative function in the framework's own array
            type.
        available: Whether the framework can be used in this environment.
        function_wrapper: Optional function applied to each derivative function the
            module builds, e.g. JIT compilation and conversion to NumPy arrays. ``None``
            when the module's functions already take and return NumPy arrays.
    """

    module: ModuleType
    available: bool
    function_wrapper: Callable[..., Any] | None = None


# The built-in backends' Mici modules and function wrappers, by backend name.
_WRAPPERS: dict[str, tuple[str, str | None]] = {
    "jax": ("diffops.jax_wrapper", "jit_and_return_numpy_arrays"),
    "jax_nojit": ("diffops.jax_wrapper", "return_numpy_arrays"),
    "jax_codegen": ("diffops.jax_codegen_wrapper", "return_numpy_arrays"),
    "autograd": ("diffops.autograd_wrapper", None),
    "symnum": ("diffops.symnum_wrapper", None),
    "torch": ("diffops.torch_wrapper", "return_numpy_arrays"),
}
_RECORDS: dict[str, AutodiffBackend] = {}
_BUILT_IN: dict[str, tuple[Backend, AutodiffBackend]] = {}


def get_backend(name: str) -> AutodiffBackend:
    """Look up a registered backend by name (case-insensitive).

    Args:
        name: Backend name, e.g. ``"jax"`` or ``"Autograd"``.

    Returns:
        The backend's ``mici.autodiff``-style record.

    Raises:
        UnknownBackendError: (a ``ValueError``) if no backend has that name; the
            message lists the valid names and the closest match.
    """
    key = name.lower() if isinstance(name, str) else name
    found = registry.backend(key)  # raises for unknown names
    if key in _RECORDS:
        return _RECORDS[key]
    if key not in _BUILT_IN or _BUILT_IN[key][0] is not found:
        if key in _WRAPPERS:
            module_name, wrapper_name = _WRAPPERS[key]
            module = importlib.import_module(module_name)
            wrapper = getattr(module, wrapper_name) if wrapper_name else None
        else:
            module = sys.modules[type(found).__module__]
            wrapper = None
        record = AutodiffBackend(module, registry.is_available(key), wrapper)
        _BUILT_IN[key] = (found, record)
    return _BUILT_IN[key][1]


def register_backend(name: str, backend: AutodiffBackend | Backend) -> None:
    """Register (or replace) a backend under ``name``.

    Args:
        name: Backend name; stored lower-case, looked up case-insensitively.
        backend: A ``mici.autodiff``-style record whose module defines every
            operator in :data:`~diffops.operators.DIFF_OPS`, or a
            :class:`~diffops.backends.protocol.Backend`.

    Raises:
        TypeError: If ``backend`` is neither.
        ValueError: If the record's module is missing one of the operators.
    """
    key = name.lower()
    _RECORDS.pop(key, None)
    if isinstance(backend, Backend):
        registry.add_backend(key, backend)
        return
    if not isinstance(backend, AutodiffBackend):
        msg = (
            f"register_backend needs an AutodiffBackend(module, available, "
            f"function_wrapper) record or a diffops Backend, not "
            f"{type(backend).__name__}."
        )
        raise TypeError(msg)
    missing = [op for op in DIFF_OPS if not callable(getattr(backend.module, op, None))]
    if missing:
        msg = (
            f"Backend module {backend.module.__name__!r} does not define the "
            f"operators {missing}; every backend must define all of {DIFF_OPS}."
        )
        raise ValueError(msg)
    registry.add_backend(key, ModuleBackend(key, backend))
    _RECORDS[key] = backend


def supported_ops(name: str) -> tuple[str, ...]:
    """The operators a registered backend defines (all of them for built-ins).

    Args:
        name: Backend name.

    Returns:
        Operator names in table order.
    """
    module = get_backend(name).module
    return tuple(op for op in ALL_DIFF_OPS if callable(getattr(module, op, None)))


def wrap_function(function: Function, backend: str | None) -> Function:
    """Apply a backend's function wrapper (e.g. JIT compilation, NumPy outputs).

    Args:
        function: Function written for the backend's framework.
        backend: Backend name, or ``None`` to return ``function`` unchanged.

    Returns:
        ``function`` itself for ``None`` or backends without a wrapper; for ``"jax"``
        a JIT-compiled version returning NumPy arrays; for ``"jax_nojit"`` and
        ``"torch"`` a version returning NumPy arrays.

    Raises:
        UnknownBackendError: For an unknown backend name.
        BackendUnavailableError: If the backend's framework is not installed.
    """
    if backend is None:
        return function
    registry.require_available(backend)
    wrapper = get_backend(backend).function_wrapper
    return function if wrapper is None else wrapper(function)


def autodiff_fallback(
    diff_func: Function | None,
    func: Function,
    diff_op_name: str,
    name: str,
    backend: str | None,
) -> Function:
    """Return ``diff_func`` if given, otherwise build it with automatic differentiation.

    Args:
        diff_func: A derivative function written by hand, or ``None``.
        func: Function to differentiate.
        diff_op_name: Operator to apply, one of ``DIFF_OPS``.
        name: Name of the derivative function, used in error messages.
        backend: Backend to differentiate with; may be ``None`` only when
            ``diff_func`` is given.

    Returns:
        ``diff_func`` unchanged when it is not ``None``; otherwise a
        :class:`~diffops.derivative.DerivativeFunction` for ``diff_op_name`` of
        ``func`` on ``backend`` (NumPy in and out).

    Raises:
        MissingDerivativeError: If both ``diff_func`` and ``backend`` are ``None``.
        UnknownOperatorError: If ``diff_op_name`` is not defined.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    if diff_func is not None:
        return diff_func
    if backend is None:
        msg = (
            f"The autodiff backend is None, so {name} must be provided directly: "
            f"pass {name}, or choose a backend such as 'jax' to build it "
            f"automatically."
        )
        raise MissingDerivativeError(msg)
    check_operator(diff_op_name)
    registry.require_available(backend)
    return DerivativeFunction(func, diff_op_name, backend)


# ---------------------------------------------------------------------------------
# The *_wrapper modules


class FrameworkOperator:
    """``op(func, **options)``: a derivative function in the framework's own arrays.

    What the ``mici.autodiff`` wrapper modules define per operator: nothing crosses
    the NumPy boundary (closures are the framework's; inputs its arrays).
    """

    def __init__(self, backend_name: str, op_name: str):
        self.backend_name = backend_name
        self.op_name = op_name
        self.__name__ = self.__qualname__ = op_name
        op = OPERATORS[op_name]
        self.__doc__ = (
            f"Make ``x -> {op.returns}`` in {backend_name}'s arrays: {op.summary}."
        )

    def __call__(self, func: Function, **options: Any) -> Function:
        """The framework-level derivative function of ``func``."""
        backend = registry.require_available(self.backend_name)
        backend.check(self.op_name, func, options)
        program = backend.operator(self.op_name, func, **options)
        shape = generated_code(backend).input_shape(self.op_name, func, **options)
        if shape is None:
            return program
        return partial(_at_shape, program, shape)

    def __repr__(self) -> str:
        return f"<{self.backend_name} operator {self.op_name}>"


def _at_shape(program: Function, shape: tuple[int, ...], x: Any, *args: Any) -> Any:
    """Generated code called with the one input shape it was generated for."""
    import numpy as np

    require_shape(
        tuple(np.shape(x)),
        shape,
        "input",
        "The code was generated for that shape; build it again for another one.",
    )
    return program(x, *args)


_FLAGS = {
    "jax": "JAX",
    "jax_codegen": "JAX",
    "autograd": "AUTOGRAD",
    "symnum": "SYMNUM",
    "torch": "TORCH",
}


def wrapper_module(backend_name: str) -> tuple[list[str], Callable[[str], Any]]:
    """``(__all__, __getattr__)`` of a ``*_wrapper`` module (PEP 562).

    Args:
        backend_name: ``"jax"``, ``"jax_codegen"``, ``"autograd"``, ``"symnum"`` or
            ``"torch"``.

    Returns:
        The module's public names, and the function giving each attribute: the
        operator factories, ``<NAME>_AVAILABLE``, and the function wrappers.
    """
    flag = f"{_FLAGS[backend_name]}_AVAILABLE"
    wrappers: dict[str, Callable[[], Any]] = {
        flag: lambda: registry.is_available(backend_name)
    }
    if backend_name == "jax":
        wrappers["return_numpy_arrays"] = lambda: partial(_wrapped, "jax_nojit", None)
        wrappers["jit_and_return_numpy_arrays"] = lambda: partial(_compiled, "jax")
    elif backend_name == "jax_codegen":
        # The function itself runs as generated NumPy code too.
        wrappers["return_numpy_arrays"] = lambda: _generated_function
    elif backend_name == "torch":
        wrappers["return_numpy_arrays"] = lambda: partial(_wrapped, "torch", None)

    made: dict[str, Any] = {}

    def attribute(name: str) -> Any:
        if name not in made:
            if name in OPERATORS:
                made[name] = FrameworkOperator(backend_name, name)
            elif name in wrappers:
                made[name] = wrappers[name]()
            else:
                msg = (
                    f"module 'diffops.{backend_name}_wrapper' has no attribute {name!r}"
                )
                raise AttributeError(msg)
        return made[name]

    return [*ALL_DIFF_OPS, *wrappers], attribute


def _wrapped(
    backend_name: str, compile: dict[str, Any] | None, function: Function
) -> Any:
    """``function`` taking and returning NumPy arrays (float64 kept)."""
    return NumpyFunction(registry.backend(backend_name), function, compile=compile)


def _generated_function(function: Function) -> Any:
    """``function`` (written with ``jax.numpy``) as generated NumPy code."""
    from diffops.backends.jax_codegen.function import GeneratedFunction

    return GeneratedFunction(function)


def _compiled(backend_name: str, function: Function, **jit_kwargs: Any) -> Any:
    """``function`` compiled (``jax.jit(**jit_kwargs)``) and returning NumPy arrays."""
    return _wrapped(backend_name, jit_kwargs, function)
