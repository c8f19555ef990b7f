"""The backend registry: backend names mapped to :class:`AutodiffBackend` records.

Importing this module imports no array framework. Each built-in backend module
(``jax_wrapper``, ...) imports its framework inside its functions, on first use, and
says whether the framework is installed with :func:`importlib.util.find_spec`, which
looks for the package without running it. This keeps ``import diffops`` fast and keeps a
broken install of one framework from breaking the others.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from diffops import autograd_wrapper, jax_wrapper, symnum_wrapper, torch_wrapper
from diffops.errors import BackendUnavailableError, UnknownBackendError, closest
from diffops.operators import DIFF_OPS


class AutodiffBackend(NamedTuple):
    """A registered automatic differentiation backend.

    Attributes:
        module: Module defining one factory per name in ``DIFF_OPS``; each takes the
            user's function and returns a derivative function in the framework's own
            array type.
        available: Whether the framework can be used in this environment.
        function_wrapper: Optional function applied to each derivative function the
            module builds, e.g. JIT compilation and conversion to NumPy arrays. ``None``
            when the module's functions already take and return NumPy arrays.
    """

    module: ModuleType
    available: bool
    function_wrapper: Callable[..., Any] | None = None


_REGISTERED_BACKENDS: dict[str, AutodiffBackend] = {
    "jax": AutodiffBackend(
        jax_wrapper, jax_wrapper.JAX_AVAILABLE, jax_wrapper.jit_and_return_numpy_arrays
    ),
    "jax_nojit": AutodiffBackend(
        jax_wrapper, jax_wrapper.JAX_AVAILABLE, jax_wrapper.return_numpy_arrays
    ),
    "autograd": AutodiffBackend(autograd_wrapper, autograd_wrapper.AUTOGRAD_AVAILABLE),
    "symnum": AutodiffBackend(symnum_wrapper, symnum_wrapper.SYMNUM_AVAILABLE),
    "torch": AutodiffBackend(
        torch_wrapper, torch_wrapper.TORCH_AVAILABLE, torch_wrapper.return_numpy_arrays
    ),
}


def _extra(name: str, backend: AutodiffBackend) -> str:
    return str(getattr(backend.module, "EXTRA", name))


def get_backend(name: str) -> AutodiffBackend:
    """Look up a registered backend by name (case-insensitive).

    Args:
        name: Backend name, e.g. ``"jax"`` or ``"Autograd"``.

    Returns:
        The backend's registry record.

    Raises:
        UnknownBackendError: (a ``ValueError``) if no backend has that name; the
            message lists the valid names and the closest match.
    """
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


def require_available(name: str) -> AutodiffBackend:
    """Look up a backend and check that its framework is installed.

    Args:
        name: Backend name (case-insensitive).

    Returns:
        The backend's registry record.

    Raises:
        UnknownBackendError: If no backend has that name.
        BackendUnavailableError: If its framework is not installed; the message names
            the extra to install.
    """
    backend = get_backend(name)
    if not backend.available:
        extra = _extra(name.lower(), backend)
        msg = (
            f"The {name!r} autodiff backend is not available: its framework is not "
            f"installed. Install it with `pip install diffops[{extra}]`, pick one of "
            f"the installed backends {available_backends()}, or pass the derivative "
            f"function directly."
        )
        raise BackendUnavailableError(msg)
    return backend


def available_backends() -> tuple[str, ...]:
    """Names of the registered backends that are usable in this environment.

    Returns:
        Backend names, in registration order.
    """
    return tuple(name for name, b in _REGISTERED_BACKENDS.items() if b.available)


def registered_backends() -> tuple[str, ...]:
    """Names of all registered backends, installed or not.

    Returns:
        Backend names, in registration order.
    """
    return tuple(_REGISTERED_BACKENDS)


def register_backend(name: str, backend: AutodiffBackend) -> None:
    """Register (or replace) a backend under ``name``.

    Args:
        name: Backend name; stored lower-case, looked up case-insensitively.
        backend: Record whose module defines every operator in ``DIFF_OPS``.

    Raises:
        TypeError: If ``backend`` is not an :class:`AutodiffBackend`.
        ValueError: If the module is missing one of the operators.
    """
    if not isinstance(backend, AutodiffBackend):
        msg = (
            f"register_backend needs an AutodiffBackend(module, available, "
            f"function_wrapper) record, not {type(backend).__name__}."
        )
        raise TypeError(msg)
    missing = [op for op in DIFF_OPS if not callable(getattr(backend.module, op, None))]
    if missing:
        msg = (
            f"Backend module {backend.module.__name__!r} does not define the "
            f"operators {missing}; every backend must define all of {DIFF_OPS}."
        )
        raise ValueError(msg)
    _REGISTERED_BACKENDS[name.lower()] = backend
