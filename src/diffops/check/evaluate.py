"""Evaluating the user's function in NumPy, for the checker's reference values.

:func:`numpy_function` turns ``func`` (plain NumPy, Autograd, JAX, PyTorch or SymNum)
into a function of NumPy arrays returning real NumPy arrays: it tries a direct call
and the wrappers of the installed backends in turn, and sends a function returning
``jax.numpy`` or ``torch`` results through its framework's wrapper, which keeps
float64; a framework is only imported when its wrapper is tried.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diffops.errors import NonArrayOutputError

Function = Callable[..., Any]

_FRAMEWORK_BACKENDS = {"jax": "jax", "jaxlib": "jax", "torch": "torch"}


def numpy_function(
    func: Function, x: np.ndarray, args: Sequence[Any], backend: str | None = None
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """``func`` as a function of NumPy arrays returning NumPy arrays.

    Tried in turn, the first that runs at ``x`` and returns real numbers wins: the
    given backend's function wrapper; a direct call (plain NumPy, Autograd and
    numpified SymNum functions), except that a ``jax.numpy`` or ``torch`` result
    sends it through that framework's wrapper (which keeps float64); the wrappers
    of the installed frameworks; and the value output of a SymNum derivative
    function (symbolic functions).

    Args:
        func: The user's function, called as ``func(y, *args)``.
        x: A float64 point at which it must run.
        args: Extra arguments.
        backend: Backend to run it on, if known.

    Returns:
        ``(evaluate, value)``: the NumPy function and its value at ``x``.

    Raises:
        NonArrayOutputError: If ``func`` returns a tuple, list, string or ``None``.
        Exception: What ``func`` raised when called directly, if nothing runs it.
    """
    from diffops.registry import available_backends

    installed = available_backends()
    # A direct call first, except for a framework that needs its wrapper; SymNum's
    # (generated code) only when nothing else runs the function.
    names: list[str | None] = [backend] if backend and backend != "symnum" else []
    names.append(None)
    names += [b for b in ("torch", "jax", "jax_nojit", "autograd") if b in installed]
    if "symnum" in installed:
        names.append("symnum")
    first_error: Exception | None = None
    tried: set[str | None] = set()
    for name in names:
        if name in tried:
            continue
        tried.add(name)
        try:
            candidate = _candidate(func, args, name, x.shape)
            with warnings.catch_warnings():
                # jax.numpy without x64 warns about float64 input: handled below.
                warnings.simplefilter("ignore")
                out = candidate(x)
        except Exception as err:
            if name is None:
                first_error = err
            continue
        if name is None and backend is None:
            module = type(out).__module__.split(".")[0]
            if module in _FRAMEWORK_BACKENDS:
                # A jax.numpy function given NumPy arrays computes in float32
                # unless x64 is on: run it through its framework's wrapper.
                return numpy_function(func, x, args, _FRAMEWORK_BACKENDS[module])
        value = _as_array(out, func)
        if value is not None:
            return _strict(candidate, func), value
    if first_error is not None:
        raise first_error
    name = getattr(func, "__name__", "the function")
    msg = f"{name!r} does not return real numbers at x on any installed backend."
    raise NonArrayOutputError(msg)


def _strict(
    candidate: Callable[[np.ndarray], Any], func: Function
) -> Callable[[np.ndarray], np.ndarray]:
    def evaluate(y: np.ndarray) -> np.ndarray:
        value = _as_array(candidate(y), func, strict=True)
        assert value is not None
        return value

    return evaluate


def _candidate(
    func: Function, args: Sequence[Any], backend: str | None, shape: tuple[int, ...]
) -> Callable[[np.ndarray], Any]:
    """``func`` called directly (``backend=None``) or through a backend."""
    if backend is None:
        return lambda y: func(y, *args)
    if backend == "symnum":
        from diffops.derivative import DerivativeFunction

        options: dict[str, Any] = {}
        if not hasattr(func, "_arg_shapes"):
            options["arg_shape"] = shape
        value_of = DerivativeFunction(func, "vjp_and_value", "symnum", **options)
        return lambda y: value_of(y, *args)[-1]
    from diffops.compat import wrap_function

    wrapped = wrap_function(func, backend)
    return lambda y: wrapped(y, *args)


def _as_array(out: Any, func: Function, *, strict: bool = False) -> np.ndarray | None:
    """``out`` as a real NumPy array; ``None`` (or an error if ``strict``) if not."""
    if out is None or isinstance(out, tuple | list | str | dict):
        name = getattr(func, "__name__", "the function")
        msg = (
            f"{name!r} returned {type(out).__name__}; check_derivatives needs the "
            f"function itself (returning one array), with the derivative functions "
            f"as keywords, e.g. check_derivatives(f, x, grad_and_value=df)."
        )
        raise NonArrayOutputError(msg)
    if hasattr(out, "detach"):
        out = out.detach()
    try:
        arr = np.asarray(out)
    except Exception:
        arr = np.asarray(None)
    if arr.dtype.kind not in "biuf":
        if not strict:
            return None
        name = getattr(func, "__name__", "the function")
        msg = f"{name!r} returned {type(out).__name__}, not an array of real numbers."
        raise NonArrayOutputError(msg)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)
