"""The backend registry: backend names mapped to the backends that implement them.

The registry is data. Each built-in entry names its framework's package (whether it
is installed is found with :func:`importlib.util.find_spec`, without importing it)
and the import path of its :class:`~diffops.backends.protocol.Backend` object, so
neither the framework nor the backend module is imported before it is used:
``import diffops`` stays fast, and a broken install of one framework cannot break
the others. Third-party backends are added with :func:`add_backend` (or, as Mici
records, with :func:`diffops.register_backend`).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, NamedTuple

from diffops.errors import BackendUnavailableError, UnknownBackendError, closest

if TYPE_CHECKING:
    from diffops.backends.protocol import Backend


class Registration(NamedTuple):
    """One registry entry.

    Attributes:
        framework: Top-level package of the framework (``None`` for third-party
            backends, whose own ``available`` says).
        backend: The backend, or ``"module:attribute"`` to import on first use.
    """

    framework: str | None
    backend: Backend | str


_REGISTERED_BACKENDS: dict[str, Registration] = {
    "jax": Registration("jax", "diffops.backends.jax:JAX"),
    "jax_nojit": Registration("jax", "diffops.backends.jax:JAX_NOJIT"),
    "jax_codegen": Registration("jax", "diffops.backends.jax_codegen:JAX_CODEGEN"),
    "autograd": Registration("autograd", "diffops.backends.autograd:AUTOGRAD"),
    "symnum": Registration("symnum", "diffops.backends.symnum:SYMNUM"),
    "torch": Registration("torch", "diffops.backends.torch:TORCH"),
}

_FOUND: dict[str, bool] = {}
_LOADED: dict[str, Backend] = {}


def installed(package: str) -> bool:
    """Whether a package can be imported (found once, without importing it)."""
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


def is_available(name: str) -> bool:
    """Whether a registered backend can be used here.

    Raises:
        UnknownBackendError: If no backend has that name.
    """
    entry = _registration(name)
    if entry.framework is not None:
        return installed(entry.framework)
    assert not isinstance(entry.backend, str)
    return entry.backend.available


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
    if found not in _LOADED:
        module_name, attribute = found.split(":")
        _LOADED[found] = getattr(importlib.import_module(module_name), attribute)
    return _LOADED[found]


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
    if not is_available(name):
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
    return tuple(name for name in _REGISTERED_BACKENDS if is_available(name))


def registered_backends() -> tuple[str, ...]:
    """Names of all registered backends, installed or not.

    Returns:
        Backend names, in registration order.
    """
    return tuple(_REGISTERED_BACKENDS)


def add_backend(name: str, backend: Backend) -> None:
    """Register (or replace) a backend object under ``name`` (stored lower-case).

    Args:
        name: Backend name.
        backend: The backend.
    """
    _REGISTERED_BACKENDS[name.lower()] = Registration(None, backend)
