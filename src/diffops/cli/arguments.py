"""The command line's arguments: names, the function to check, the point.

Each helper turns one argument into what the commands need, or raises
:class:`UsageError` with a message saying what to change (the command line prints
it and exits with status 2, without a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from diffops.errors import first_line

USAGE_EXIT = 2


def parse_names(text: str | None) -> tuple[str, ...] | None:
    """Comma-separated names, lower case, without repeats (``None`` if empty).

    Args:
        text: The argument.

    Returns:
        The names in order, or ``None``.
    """
    if not text:
        return None
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    return tuple(dict.fromkeys(names))  # without repeats, in order


class UsageError(Exception):
    """A command-line argument names something that does not exist or is invalid."""


def check_names(
    kind: str, names: tuple[str, ...] | None, valid: tuple[str, ...]
) -> tuple[str, ...] | None:
    """``names`` if each is in ``valid``; else a :class:`UsageError` with a hint."""
    from diffops.errors import closest

    for name in names or ():
        if name not in valid:
            msg = f"unknown {kind} {name!r}: choose from {', '.join(valid)}."
            raise UsageError(msg + closest(name, valid))
    return names


def backend_selection(text: str | None) -> tuple[str, ...] | None:
    """Backends named in ``text`` (``None``: every installed one), all installed."""
    from diffops.registry import available_backends, registered_backends
    from diffops.registry import backend as lookup

    if text is not None and text.strip().lower() == "none":
        return ()
    backends = check_names("backend", parse_names(text), registered_backends())
    for name in backends or ():
        if name not in available_backends():
            extra = lookup(name).extra
            msg = (
                f"backend {name!r} is not installed: `pip install diffops[{extra}]` "
                f"(from the repository: `pip install -e .[{extra}]`), or choose from "
                f"the installed ones: {', '.join(available_backends())}."
            )
            raise UsageError(msg)
    return backends


def load_module(spec: str) -> tuple[ModuleType, str]:
    """Import ``PATH.py`` or a module name; usage errors for what goes wrong."""
    looks_like_path = spec.endswith(".py") or "/" in spec or "\\" in spec
    if looks_like_path:
        path = Path(spec)
        if not path.is_file():
            msg = f"file not found: {spec} (give PATH.py:FUNC or module:FUNC)."
            raise UsageError(msg)
        name = f"diffops_check_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            msg = f"cannot load {spec} as a Python file."
            raise UsageError(msg)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        # Let the file import its neighbours, as when it is run as a script.
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            module_spec.loader.exec_module(module)
        except Exception as err:
            msg = f"loading {spec} failed: {error_text(err, path)}"
            raise UsageError(msg) from err
        return module, str(path)
    # As `python -m` does: modules in the current directory come first.
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(spec), spec
    except Exception as err:
        msg = f"cannot import module {spec!r}: {error_text(err)}"
        if isinstance(err, ModuleNotFoundError) and err.name == spec.split(".")[0]:
            msg += f" (looked in the current directory, {here}, and on sys.path)"
        raise UsageError(msg) from err


def error_text(err: BaseException, path: Path | None = None) -> str:
    """``Type: message`` and, if known, the line in the user's file that raised."""
    text = f"{type(err).__name__}: {err}".strip()
    if isinstance(err, SyntaxError) and err.lineno is not None:
        return first_line(err, with_type=True)
    if path is not None:
        frames = [
            f
            for f in traceback.extract_tb(err.__traceback__)
            if Path(f.filename).resolve() == path.resolve()
        ]
        if frames:
            frame = frames[-1]
            text += f" (at {path}, line {frame.lineno}: {(frame.line or '').strip()})"
    return text


def find_function(module: ModuleType, where: str, name: str) -> Any:
    """The function ``name`` of a loaded module, or a usage error listing its functions.

    Args:
        module: The module.
        where: Where it was loaded from, for messages.
        name: The function's name.

    Returns:
        The function.

    Raises:
        UsageError: If there is no callable of that name.
    """
    from diffops.errors import closest

    func = getattr(module, name, None)
    if callable(func):
        return func
    if func is not None:
        msg = f"{name!r} in {where} is {type(func).__name__}, not a function."
    else:
        defined = _functions_defined(module)
        msg = (
            f"no function {name!r} in {where}; it defines: "
            f"{', '.join(defined) or 'no functions'}.{closest(name, defined)}"
        )
    raise UsageError(msg)


def _functions_defined(module: ModuleType) -> list[str]:
    """The public functions that ``module`` defines (not imports), sorted."""
    return sorted(
        key
        for key, value in vars(module).items()
        if callable(value)
        and not key.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
    )


def load_target(text: str) -> tuple[ModuleType, str, str, Any]:
    """Module, where it was loaded from, the function's name, the function."""
    spec, sep, name = text.rpartition(":")
    if not sep or not spec or not name:
        msg = (
            f"expected PATH.py:FUNC or module:FUNC, got {text!r} "
            f"(e.g. examples/rosenbrock.py:rosenbrock)."
        )
        raise UsageError(msg)
    module, where = load_module(spec)
    return module, where, name, find_function(module, where, name)


def parse_shape(text: str) -> tuple[int, ...]:
    """``--shape``: ``3``, ``2,3``, ``2x3`` or ``()``.

    Args:
        text: The argument.

    Returns:
        The shape.

    Raises:
        UsageError: If it is not a shape.
    """
    cleaned = text.strip().strip("()[]").replace("x", ",").replace(" ", "")
    if not cleaned:
        return ()
    try:
        shape = tuple(int(t) for t in cleaned.split(",") if t)
    except ValueError:
        shape = (-1,)
    if any(n < 0 for n in shape):
        msg = f"--shape {text!r} is not a shape: give sizes like 3, 2,3 or ()."
        raise UsageError(msg)
    return shape


def parse_point(args: argparse.Namespace, func: Any) -> Any:
    """The point: ``--point``, or a random point of ``--shape`` (or SymNum's shape).

    Args:
        args: The parsed arguments (``point``, ``shape``, ``dtype``, ``seed``).
        func: The function (a SymNum function knows its input shape).

    Returns:
        The point, a NumPy array of ``--dtype``.

    Raises:
        UsageError: If neither is given, or they do not agree.
    """
    import numpy as np

    dtype = np.dtype(args.dtype)
    if args.point is not None:
        text = args.point.strip()
        try:
            values = json.loads(text if text.startswith("[") else f"[{text}]")
            point = np.asarray(values, dtype=np.float64)
        except (ValueError, TypeError) as err:
            msg = (
                f"--point {args.point!r} is not a list of numbers: give e.g. "
                f"'0.5,1.0' or '[[1, 2], [3, 4]]' ({err})."
            )
            raise UsageError(msg) from err
        if args.shape is not None:
            shape = parse_shape(args.shape)
            if point.size != math.prod(shape):
                msg = (
                    f"--point has {point.size} numbers, but --shape {args.shape} "
                    f"needs {math.prod(shape)}."
                )
                raise UsageError(msg)
            point = point.reshape(shape)
        return point.astype(dtype)
    if args.shape is not None:
        shape = parse_shape(args.shape)
    else:
        from diffops.check.evaluate import known_input_shape

        known = known_input_shape(func)  # SymNum functions know it
        if known is None:
            msg = (
                "give the input's shape (--shape 3) or a point (--point 0.5,1.0): "
                "the function is evaluated there."
            )
            raise UsageError(msg)
        shape = known
    rng = np.random.default_rng(args.seed)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def supplied_functions(
    module: ModuleType, where: str, entries: list[str]
) -> list[tuple[str, str, Any]]:
    """``--supplied OP=FUNC`` entries as ``(op, name, function)``.

    Args:
        module: The module the functions are in.
        where: Where it was loaded from, for messages.
        entries: The ``--supplied`` arguments (each may list several, with commas).

    Returns:
        One triple per function.

    Raises:
        UsageError: For an unknown operator or function, or a malformed entry.
    """
    from diffops.errors import closest
    from diffops.operators import ALL_DIFF_OPS

    found = []
    for entry in entries:
        for item in entry.split(","):
            op, sep, name = item.strip().partition("=")
            op = op.strip().lower()
            name = name.strip()
            if not sep or not name:
                msg = (
                    f"--supplied {item!r}: give OPERATOR=FUNC, e.g. "
                    f"--supplied grad_and_value=my_grad."
                )
                raise UsageError(msg)
            if op not in ALL_DIFF_OPS:
                msg = (
                    f"--supplied {item!r}: unknown operator {op!r}: choose from "
                    f"{', '.join(ALL_DIFF_OPS)}.{closest(op, ALL_DIFF_OPS)}"
                )
                raise UsageError(msg)
            found.append((op, name, find_function(module, where, name)))
    return found


_CLI_HINT = (
    "To check a derivative function, give the function itself as PATH.py:FUNC and "
    "the derivative function as --supplied OPERATOR=FUNC."
)


def value_at(func: Any, name: str, where: str, x: Any) -> Any:
    """``func(x)`` in NumPy; a usage error naming the problem if it cannot run."""
    import numpy as np

    from diffops.check import describe_point, numpy_function
    from diffops.errors import DiffopsError

    try:
        _, value = numpy_function(func, x.astype(np.float64), (), hint=_CLI_HINT)
    except DiffopsError as err:
        # diffops' own message says what is wrong and how to fix it.
        msg = f"{name} at {describe_point(x)}: {err}"
        raise UsageError(msg) from err
    except Exception as err:
        path = Path(where) if where.endswith(".py") else None
        msg = (
            f"{name} fails at {describe_point(x)}: "
            f"{sentence(error_text(err, path))} Fix the function, or choose "
            f"another --shape or --point."
        )
        raise UsageError(msg) from err
    return value


def sentence(text: str) -> str:
    """``text`` ending with one full stop."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def operators(args: argparse.Namespace, name: str, value: Any, supplied: Any) -> Any:
    """The operators to check: those named, or every one that applies."""
    import numpy as np

    from diffops.operators import ALL_DIFF_OPS, OPERATORS

    scalar = np.shape(value) == ()
    ops = check_names("operator", parse_names(args.ops), ALL_DIFF_OPS)
    if ops is None:
        ops = tuple(
            op for op in ALL_DIFF_OPS if scalar or not OPERATORS[op].scalar_only
        )
    array_ops = [op for op in ALL_DIFF_OPS if not OPERATORS[op].scalar_only]
    for op in (*ops, *(s[0] for s in supplied)):
        if OPERATORS[op].scalar_only and not scalar:
            msg = (
                f"{op} needs a scalar function, but {name} returns shape "
                f"{np.shape(value)}: choose from {', '.join(array_ops)}."
            )
            raise UsageError(msg)
    return ops
