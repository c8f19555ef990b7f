"""Evaluating the user's function in NumPy, for the checker's reference values.

:func:`numpy_function` turns ``func`` (plain NumPy, Autograd, JAX, PyTorch or SymNum)
into a function of NumPy arrays returning real NumPy arrays: it tries a direct call
and the wrappers of the installed backends in turn, and sends a function returning
``jax.numpy`` or ``torch`` results through its framework's wrapper, which keeps
float64; a framework is only imported when its wrapper is tried.
:func:`backend_options` gives the options a backend needs for a user's function
(SymNum: the input's shape), for the checker and the command line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diffops.errors import NonArrayOutputError, function_name

Function = Callable[..., Any]


def numpy_function(
    func: Function,
    x: np.ndarray,
    args: Sequence[Any],
    backend: str | None = None,
    *,
    hint: str = "",
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
        hint: A sentence added to the error when ``func`` returns a tuple or list
            (perhaps a derivative function given in place of the function).

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
    names += [b for b in installed if b != "symnum"]
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
        owner = (
            _backend_of(out, installed) if name is None and backend is None else None
        )
        if owner is not None:
            # A jax.numpy function given NumPy arrays computes in float32 unless
            # x64 is on: run it through its framework's wrapper.
            return numpy_function(func, x, args, owner, hint=hint)
        value = _as_array(out, func, hint=hint)
        if value is not None:
            return _strict(candidate, func), value
    if first_error is not None:
        raise first_error
    msg = (
        f"{function_name(func)!r} does not return real numbers at x on any "
        f"installed backend."
    )
    raise NonArrayOutputError(msg)


def _backend_of(out: Any, installed: Sequence[str]) -> str | None:
    """The first backend whose framework's arrays ``out`` is (``jaxlib`` is JAX's)."""
    from diffops.registry import backend

    module = type(out).__module__.split(".")[0]
    for name in installed:
        framework = backend(name).framework
        if module.startswith(framework) and name != "symnum":
            return name
    return None


def known_input_shape(func: Function) -> tuple[int, ...] | None:
    """The input shape a function records, if any (``symnum.numpify`` records it).

    Args:
        func: The user's function.

    Returns:
        The shape of its first argument, or ``None``.
    """
    shapes = getattr(func, "_arg_shapes", None)
    return tuple(shapes[0]) if shapes else None


def backend_options(
    func: Function, backend: str, shape: tuple[int, ...]
) -> dict[str, Any]:
    """Options a backend needs to differentiate ``func`` at a point of ``shape``.

    SymNum generates code for one input shape: a function not decorated with
    ``symnum.numpify`` (which records the shapes) needs ``arg_shape``.

    Args:
        func: The user's function.
        backend: Backend name.
        shape: Shape of the point.

    Returns:
        ``{"arg_shape": shape}`` for SymNum and a function without recorded
        shapes, else ``{}``.
    """
    if backend == "symnum" and known_input_shape(func) is None:
        return {"arg_shape": tuple(shape)}
    return {}


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

        options = backend_options(func, "symnum", shape)
        value_of = DerivativeFunction(func, "vjp_and_value", "symnum", **options)
        return lambda y: value_of(y, *args)[-1]
    from diffops.compat import wrap_function

    wrapped = wrap_function(func, backend)
    return lambda y: wrapped(y, *args)


def _as_array(
    out: Any, func: Function, *, strict: bool = False, hint: str = ""
) -> np.ndarray | None:
    """``out`` as a real NumPy array; ``None`` (or an error if ``strict``) if not."""
    name = function_name(func)
    if out is None or isinstance(out, tuple | list | str | dict):
        text = repr(out)
        sample = text if len(text) <= 40 else text[:37] + "..."
        msg = (
            f"{name!r} returned {type(out).__name__} {sample}, but a function to "
            f"differentiate returns one array computed from its argument. Return an "
            f"array, e.g. `xp.stack([...])` for several values."
        )
        if isinstance(out, tuple | list) and hint:
            msg += f" {hint}"
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
        msg = f"{name!r} returned {type(out).__name__}, not an array of real numbers."
        raise NonArrayOutputError(msg)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)
