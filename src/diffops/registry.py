"""The backend registry: backend names mapped to what implements them.

The registry is data. Each entry names the framework package (whether it is installed
is found with :func:`importlib.util.find_spec`, without importing it), the
:class:`~diffops.backends.protocol.Backend` object that diffops' derivative functions
use, and the ``mici.autodiff``-style :class:`AutodiffBackend` record (a module of
operators and a function wrapper) that :func:`get_backend` returns. Built-in entries
name their objects by import path, so neither the framework nor the backend module
is imported before it is used: ``import diffops`` stays fast, and a broken install of
one framework cannot break the others.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from diffops.errors import BackendUnavailableError, UnknownBackendError, closest
from diffops.operators import ALL_DIFF_OPS

if TYPE_CHECKING:
    from diffops.backends.protocol import Backend


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


class Registration(NamedTuple):
    """One registry entry.

    Attributes:
        framework: Top-level package of the framework (``None`` for third-party
            backends, whose own ``available`` says).
        backend: The backend, or ``"module:attribute"`` to import on first use.
        module: The mici-style module of operators, or its import path.
        wrapper: The module's function wrapper, its name in the module, or ``None``.
    """

    framework: str | None
    backend: Backend | str
    module: ModuleType | str
    wrapper: Callable[..., Any] | str | None


_REGISTERED_BACKENDS: dict[str, Registration] = {
    "jax": Registration(
        "jax",
        "diffops.backends.jax:JAX",
        "diffops.jax_wrapper",
        "jit_and_return_numpy_arrays",
    ),
    "jax_nojit": Registration(
        "jax",
        "diffops.backends.jax:JAX_NOJIT",
        "diffops.jax_wrapper",
        "return_numpy_arrays",
    ),
    "autograd": Registration(
        "autograd",
        "diffops.backends.autograd:AUTOGRAD",
        "diffops.autograd_wrapper",
        None,
    ),
    "symnum": Registration(
        "symnum", "diffops.backends.symnum:SYMNUM", "diffops.symnum_wrapper", None
    ),
    "torch": Registration(
        "torch",
        "diffops.backends.torch:TORCH",
        "diffops.torch_wrapper",
        "return_numpy_arrays",
    ),
}

_FOUND: dict[str, bool] = {}
_RECORDS: dict[Registration, AutodiffBackend] = {}
_BACKENDS: dict[Registration, Backend] = {}


def _installed(package: str) -> bool:
    if package not in _FOUND:
        _FOUND[package] = importlib.util.find_spec(package) is not None
    return _FOUND[package]


def _registration(name: str) -> Registration:
    if not isinstance(name, str):
        msg = f"Backend must be a string such as 'jax', not {type(name).__name__}."
        raise UnknownBackendError(msg)
    key = name.lower()
    try:
        return _REGISTERED_BACKENDS[key]
    except KeyError:
        msg = (
            f"Unknown autodiff backend {name!r}: valid names are "
            f"{tuple(_REGISTERED_BACKENDS)}.{closest(key, _REGISTERED_BACKENDS)}"
        )
        raise UnknownBackendError(msg) from None


def _is_available(entry: Registration) -> bool:
    if entry.framework is not None:
        return _installed(entry.framework)
    backend = entry.backend
    assert not isinstance(backend, str)
    return backend.available


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
    entry = _registration(name)
    record = _RECORDS.get(entry)
    if record is None:
        module = entry.module
        if isinstance(module, str):
            module = importlib.import_module(module)
        wrapper = entry.wrapper
        if isinstance(wrapper, str):
            wrapper = getattr(module, wrapper)
        record = AutodiffBackend(module, _is_available(entry), wrapper)
        _RECORDS[entry] = record
    return record


def backend(name: str) -> Backend:
    """The :class:`~diffops.backends.protocol.Backend` behind a backend name.

    Args:
        name: Backend name (case-insensitive).

    Returns:
        The backend object (its module is imported now, its framework is not).

    Raises:
        UnknownBackendError: If no backend has that name.
    """
    entry = _registration(name)
    found = entry.backend
    if not isinstance(found, str):
        return found
    cached = _BACKENDS.get(entry)
    if cached is None:
        module_name, attribute = found.split(":")
        cached = getattr(importlib.import_module(module_name), attribute)
        _BACKENDS[entry] = cached
    return cached


def require_available(name: str) -> Backend:
    """Look up a backend and check that its framework is installed.

    Args:
        name: Backend name (case-insensitive).

    Returns:
        The backend object.

    Raises:
        UnknownBackendError: If no backend has that name.
        BackendUnavailableError: If its framework is not installed; the message names
            the extra to install.
    """
    entry = _registration(name)
    if not _is_available(entry):
        found = backend(name)
        msg = (
            f"The {name!r} autodiff backend is not available: its framework is not "
            f"installed. Install it with `pip install diffops[{found.extra}]` (from "
            f"the repository: `pip install -e .[{found.extra}]`), pick one of the "
            f"installed backends {available_backends()}, or pass the derivative "
            f"function directly."
        )
        raise BackendUnavailableError(msg)
    return backend(name)


def available_backends() -> tuple[str, ...]:
    """Names of the registered backends that are usable in this environment.

    Returns:
        Backend names, in registration order.
    """
    return tuple(
        name for name, entry in _REGISTERED_BACKENDS.items() if _is_available(entry)
    )


def registered_backends() -> tuple[str, ...]:
    """Names of all registered backends, installed or not.

    Returns:
        Backend names, in registration order.
    """
    return tuple(_REGISTERED_BACKENDS)


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
    from diffops.backends.modules import ModuleBackend
    from diffops.backends.protocol import Backend
    from diffops.operators import DIFF_OPS

    if isinstance(backend, Backend):
        _REGISTERED_BACKENDS[name.lower()] = Registration(
            None, backend, type(backend).__module__, None
        )
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
    _REGISTERED_BACKENDS[name.lower()] = Registration(
        None,
        ModuleBackend(name.lower(), backend),
        backend.module,
        backend.function_wrapper,
    )


def supported_ops(name: str) -> tuple[str, ...]:
    """The operators a registered backend defines (all of them for built-ins).

    Args:
        name: Backend name.

    Returns:
        Operator names in table order.
    """
    module = get_backend(name).module
    return tuple(op for op in ALL_DIFF_OPS if callable(getattr(module, op, None)))
