"""What every backend module needs, below the NumPy boundary.

- dtypes: the two float dtypes diffops computes in;
- :func:`check_value`: what the user's function returned, checked at trace time;
- :func:`require_fits`: refuse a Jacobian or Hessian larger than the machine's memory
  before allocating it;
- Jacobian modes: :func:`check_jacobian_mode`, :func:`jacobian_mode`;
- fork safety: :func:`require_not_forked` and the fork handler.

Nothing here imports a framework, and nothing imports the boundary: imports run from
the boundary down to the backends, never up.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.errors import (
    ComplexOutputError,
    ForkedProcessError,
    NonArrayOutputError,
    OutputTooLargeError,
    function_name,
    require_scalar,
)
from diffops.operators import JACOBIAN_MODES, Operator

FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)
FLOAT_DTYPES = (FLOAT32, FLOAT64)


# ---------------------------------------------------------------------------------
# The user's function's value


def check_value(
    value: Any, op: Operator, func: Any, shape: Any, *, complex_: bool = False
) -> None:
    """Check, at trace or record time, what the user's function returned.

    Args:
        value: What ``func`` returned (a framework array, or something else).
        op: The operator being computed.
        func: The user's function (for messages).
        shape: Shape of ``value`` if it is an array, else ``None``.
        complex_: Whether ``value`` holds complex numbers.

    Raises:
        NonArrayOutputError: (a ``TypeError``) if ``value`` is not an array.
        ComplexOutputError: (a ``TypeError``) if it is complex.
        NonScalarOutputError: If a scalar operator's function returned a non-0-d
            array.
    """
    if not complex_ and shape is not None:  # a real array: the usual case, fast
        if op.scalar_only:
            require_scalar(tuple(shape), op.name)
        return
    name = function_name(func)
    if complex_:
        dtype = getattr(value, "dtype", "complex")
        msg = (
            f"{name!r} returned complex values (dtype {dtype}); {op.name} "
            f"differentiates real functions only, because frameworks disagree on "
            f"complex derivatives. Return the real and imaginary parts as a real "
            f"array, e.g. `xp.stack([z.real, z.imag])`, or `abs(z) ** 2`."
        )
        raise ComplexOutputError(msg)
    if shape is None:
        kind = type(value).__name__
        msg = (
            f"{name!r} returned {kind}{_sample(value)}, but {op.name} needs it to "
            f"return one array{' of shape ()' if op.scalar_only else ''} computed "
            f"from its argument. Return an array, e.g. `xp.stack([...])` for several "
            f"values."
        )
        raise NonArrayOutputError(msg)


def _sample(value: Any) -> str:
    if value is None or isinstance(value, tuple | list | str | int | float):
        text = repr(value)
        return f" {text if len(text) <= 40 else text[:37] + '...'}"
    return ""


# ---------------------------------------------------------------------------------
# Call signatures


def call_signature(
    x: Any, args: tuple[Any, ...], other: Callable[[Any], Any] = type
) -> tuple[Any, ...]:
    """What a call's compiled program and the layout of its results depend on.

    The input's shape and dtype, and for the extra arguments their tree structure
    (tuples, lists, dicts, nested) with every leaf's type, shape and dtype. Two calls
    with the same signature run the same traced program; everything cached per call
    (packed-output layouts, sparse plans, first-call probes) is keyed on it, never on
    the top-level objects alone.

    Args:
        x: The input array.
        args: The extra arguments.
        other: Signature of an argument that is neither an array, a number nor a
            container of them (the backend's
            :meth:`~diffops.backends.capabilities.CompiledPrograms.argument_signature`).

    Returns:
        A hashable key.
    """
    if not args:
        return (x.shape, x.dtype)
    return (x.shape, x.dtype, *[_tree_signature(a, other) for a in args])


_NUMBERS = (bool, int, float, complex)


def _tree_signature(a: Any, other: Callable[[Any], Any]) -> Any:
    kind = type(a)
    if kind is np.ndarray:
        return (a.shape, a.dtype)
    if kind in _NUMBERS or a is None:
        return kind
    if isinstance(a, tuple | list):
        return (kind, *[_tree_signature(b, other) for b in a])
    if isinstance(a, dict):
        return (kind, *[(k, _tree_signature(v, other)) for k, v in a.items()])
    shape = getattr(a, "shape", None)
    if shape is not None and hasattr(a, "dtype"):
        return (kind, tuple(shape), str(a.dtype))
    return other(a)


# ---------------------------------------------------------------------------------
# Memory


@functools.cache
def memory_bytes() -> float:
    """This machine's physical memory in bytes (``inf`` if it cannot be read)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not Linux/mac
        return math.inf


_ALTERNATIVES = {
    "hessian": "hvp_grad_and_value (Hessian-vector products without forming the "
    "Hessian), sparsity='detect' for a sparse Hessian, or a smaller problem",
    "jacobian": "vjp_and_value / jvp_and_value (products without forming the "
    "Jacobian), sparsity='detect' for a sparse Jacobian, or a smaller problem",
}


def require_fits(what: str, shape: tuple[int, ...], dtype: Any, op_name: str) -> None:
    """Raise before allocating a Jacobian or Hessian larger than this machine's memory.

    Args:
        what: ``"hessian"`` or ``"jacobian"``.
        shape: Its shape.
        dtype: Its dtype.
        op_name: The operator (for the message).

    Raises:
        OutputTooLargeError: (a ``MemoryError``) naming the size and what to use
            instead.
    """
    needed = math.prod(shape) * np.dtype(dtype).itemsize
    available = memory_bytes()
    if needed <= available:
        return
    msg = (
        f"{op_name}: the {what} would have shape {tuple(shape)} and need "
        f"{_bytes(needed)}, more than this machine's {_bytes(available)} of memory. "
        f"Use {_ALTERNATIVES[what]}."
    )
    raise OutputTooLargeError(msg)


def _bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # pragma: no cover


# ---------------------------------------------------------------------------------
# Jacobian modes


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

FORKED_AFTER: set[str] = set()
"""Frameworks that had started in the parent of this fork child (empty: not one)."""


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
        FORKED_AFTER.add("jax")
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
    if framework in FORKED_AFTER:
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
