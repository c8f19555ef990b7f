"""Errors from the frameworks, explained: what was wrong and how to fix it."""

from __future__ import annotations

from diffops.backends.protocol import Backend, Function
from diffops.errors import (
    DiffopsError,
    TracingError,
    causes,
    function_name,
    tracing_error,
)


def explain(backend: Backend, err: Exception, func: Function) -> Exception | None:
    """The exception to raise instead of ``err`` (``None``: re-raise ``err``).

    Args:
        backend: The backend that raised.
        err: The exception.
        func: The user's function.

    Returns:
        A :class:`~diffops.errors.TracingError` (or other diffops error) with a hint,
        from the backend's own explanation or the generic ones.
    """
    if any(isinstance(e, DiffopsError) for e in causes(err)):
        return None
    return (
        _foreign_framework(backend, err, func)
        or backend.explain_error(err, func)
        or _numpy_met_arrays(backend, err, func)
    )


def _numpy_met_arrays(
    backend: Backend, err: Exception, func: Function
) -> Exception | None:
    """A hint when a plain NumPy function met the backend's arrays.

    Looked for in the whole chain: NumPy's item assignment raises a ``ValueError``
    ("setting an array element with a sequence") from the ``TypeError`` that names
    the framework's array.
    """
    if not backend.write_with:
        return None
    for e in causes(err):
        if not isinstance(e, TypeError | AttributeError | RuntimeError):
            continue
        text = str(e)
        if any(marker in text for marker in backend.numpy_markers) or (
            _raised_inside_numpy(e)
        ):
            cause = f"{type(err).__name__}: {err}"
            return tracing_error(backend.title, func, cause, backend.write_with)
    return None


def _raised_inside_numpy(err: BaseException) -> bool:
    """Whether ``err`` was raised in NumPy's code (a NumPy function met an array)."""
    tb = err.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module == "numpy" or module.startswith("numpy."):
            return True
        tb = tb.tb_next
    return False


# The frameworks a user's function may be written with, by top-level package, and
# the backend and module that run such functions.
_FRAMEWORKS = {
    "jax": ("jax", "jax.numpy"),
    "jaxlib": ("jax", "jax.numpy"),
    "torch": ("torch", "torch operations"),
    "autograd": ("autograd", "autograd.numpy"),
    "symnum": ("symnum", "symnum.numpy"),
}


def _foreign_framework(
    backend: Backend, err: Exception, func: Function
) -> Exception | None:
    """A hint when ``func`` uses another framework than the backend's.

    Found from where the error was raised (a frame in another framework's code) or,
    for frameworks whose checks run in C, from the message.
    """
    own = backend.framework
    found = None
    for e in causes(err):
        tb = e.__traceback__
        while tb is not None:
            module = tb.tb_frame.f_globals.get("__name__", "").split(".")[0]
            if module in _FRAMEWORKS and _FRAMEWORKS[module][0] != own:
                found = module
            tb = tb.tb_next
        text = str(e)
        if found is None and own != "torch" and "must be Tensor" in text:
            found = "torch"
        if found is None and own != "jax" and "JAX type" in text:
            found = "jax"  # JAX hides its own frames from tracebacks
    if found is None:
        return None
    other, module_text = _FRAMEWORKS[found]
    name = function_name(func)
    first_line = str(err).strip().split("\n")[0]
    msg = (
        f"{name!r} uses {other} ({type(err).__name__}: {first_line}), but the "
        f"{backend.name!r} backend runs it on {own} arrays.\nHint: functions "
        f"written with {module_text} use backend={other!r}; or write {name!r} with "
        f"the {own} backend's own operations."
    )
    return TracingError(msg)
