"""Exception classes and the messages shared by every backend.

Each class subclasses the built-in exception that the public API promises
(``ValueError`` or ``TypeError``), so ``except ValueError`` keeps working, while
tests and callers can also catch the specific diffops class.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class DiffopsError(Exception):
    """Base class of every exception raised by diffops itself."""


class UnknownBackendError(DiffopsError, ValueError):
    """The backend name is not registered."""


class BackendUnavailableError(DiffopsError, ValueError):
    """The backend is registered but its framework is not installed."""


class MissingDerivativeError(DiffopsError, ValueError):
    """No backend was chosen and no derivative function was given."""


class UnknownOperatorError(DiffopsError, ValueError):
    """The operator name is not one of ``DIFF_OPS``."""


class NonScalarOutputError(DiffopsError, ValueError):
    """A scalar-only operator was applied to a function with a non-scalar output."""


class ShapeMismatchError(DiffopsError, ValueError):
    """An array argument has a different shape from the one required."""


class MissingArgumentShapeError(DiffopsError, ValueError):
    """A SymNum function was given without the shapes of its arguments."""


class InputTypeError(DiffopsError, TypeError):
    """An input is of a type that cannot be differentiated (complex, object, ...)."""


class NotCallableError(DiffopsError, TypeError):
    """The function to differentiate is not callable."""


class TracingError(DiffopsError, TypeError):
    """The user's function could not be traced by the framework of its backend."""


class NonArrayOutputError(DiffopsError, TypeError):
    """The user's function returned something that is not an array (None, a tuple)."""


class SparsityError(DiffopsError, ValueError):
    """A sparsity option or pattern that cannot be used."""


class ComplexOutputError(DiffopsError, TypeError):
    """The user's function returned complex values (only real functions are taken)."""


class CodeGenerationError(DiffopsError, ValueError):
    """A backend that generates code cannot express the function's derivative."""


class ReentrantBuildError(DiffopsError, RuntimeError):
    """The user's function called its own derivative function while it was built."""


class ForkedProcessError(DiffopsError, RuntimeError):
    """JAX is used in a ``fork`` child after it computed in the parent process."""


class OutputTooLargeError(DiffopsError, MemoryError):
    """A Jacobian or Hessian would not fit in this machine's memory."""


class UnknownOptionError(DiffopsError, TypeError):
    """An operator was given a keyword option it does not take on that backend."""


def closest(name: str, options: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest option, or an empty string."""
    import difflib  # imported only when an error message needs it

    matches = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" Did you mean {matches[0]!r}?" if matches else ""


def tracing_error(
    framework: str, func: object, cause: object, fix: str
) -> TracingError:
    """The :class:`TracingError` raised when a framework could not trace a function.

    Args:
        framework: The framework's name, e.g. ``"JAX"``.
        func: The user's function (for its name).
        cause: The framework's own error, quoted.
        fix: What to do, e.g. ``"write it with jax.numpy"``; the function's name is
            put in front.

    Returns:
        The exception to raise.
    """
    name = getattr(func, "__name__", "the function")
    msg = f"{framework} could not trace {name!r}: {cause}\nHint: write {name!r} {fix}"
    return TracingError(msg)


def function_name(func: Any, attr: str = "__name__") -> str:
    """A function's name for messages and reprs (its type's name if it has none).

    Args:
        func: Any callable.
        attr: ``"__name__"`` or ``"__qualname__"``.

    Returns:
        The name, e.g. ``"banana"`` or ``"<lambda>"``.
    """
    name = getattr(func, attr, None) or getattr(func, "__name__", None)
    return str(name) if name else type(func).__name__


def first_line(err: BaseException, *, with_type: bool = False) -> str:
    """The first line of an exception's message (its type's name if empty).

    Args:
        err: The exception.
        with_type: Whether to put ``"TypeName: "`` in front.

    Returns:
        One line.
    """
    text = str(err).strip()
    line = text.splitlines()[0] if text else ""
    if with_type:
        return f"{type(err).__name__}: {line}".rstrip(": ")
    return line or type(err).__name__


def require_scalar(value_shape: tuple[int, ...], op_name: str) -> None:
    """Raise :class:`NonScalarOutputError` unless ``value_shape`` is ``()``.

    Args:
        value_shape: Shape of the value returned by the user's function.
        op_name: Name of the scalar-only operator being built.

    Raises:
        NonScalarOutputError: If the shape is not ``()`` (``(1,)`` included).
    """
    if tuple(value_shape) == ():
        return
    msg = (
        f"{op_name} needs a scalar-valued function, but the function returned an "
        f"array of shape {tuple(value_shape)}. Return a 0-d value (e.g. "
        f"`f(x).sum()` or `f(x)[0]`), or use jacobian_and_value / vjp_and_value "
        f"for array-valued functions."
    )
    raise NonScalarOutputError(msg)


def require_shape(
    shape: tuple[int, ...], expected: tuple[int, ...], what: str, fix: str
) -> None:
    """Raise :class:`ShapeMismatchError` if ``shape`` differs from ``expected``.

    Args:
        shape: Shape of the array that was passed.
        expected: Shape that was required.
        what: Description of the argument, e.g. ``"argument of mtp"``.
        fix: Sentence telling the caller what shape to pass and why.

    Raises:
        ShapeMismatchError: If the shapes differ.
    """
    if shape == expected:
        return
    msg = f"The {what} has shape {shape}, but shape {expected} is required. {fix}"
    raise ShapeMismatchError(msg)


def causes(err: BaseException) -> list[BaseException]:
    """``err`` followed by the exceptions it was raised from or while handling.

    Args:
        err: An exception.

    Returns:
        The chain ``err, err.__cause__ or err.__context__, ...`` without repeats.
    """
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
