"""Disk cache of generated modules, and the keys that find them.

Two keys lead to the same record (a JSON file holding the source and the avals):

- :func:`jaxpr_key`, a hash of the jaxpr's text, the bytes of its constants, the
  mode and the function name, so that a second process that traces the same program
  skips simplification and emission;
- :func:`function_key`, a hash of the *Python function* and the shapes and dtypes of
  its arguments, so that a second process skips tracing as well (and need not import
  JAX at all).

Invalidation rule of :func:`function_key`: the key changes when any of these
change: the function's bytecode, constants, names and default arguments; the values
in its closure cells and the global values it reads (arrays by their bytes, numbers
and strings by value); the same, recursively, for every Python function it reaches
that way, including functions read as attributes of modules it references
(``mylib.f``) and functions wrapped by ``jax.jit`` or ``functools.wraps``; the
argument shapes and dtypes; the JAX and diffops versions; the Python version; and
:data:`FORMAT`. Functions of the standard library, JAX, NumPy, SciPy and diffops
enter by name (their versions cover their code), but what they close over is
followed (the user's function inside a diffops or JAX wrapper). Whether 64-bit JAX
was enabled is not part of the key: a record is used only if its traced input
dtypes are the arguments' dtypes. The key does not see code reached any other way
(methods of objects, C extensions, files the function reads): pass ``salt`` (e.g.
your package's version) or delete the cache directory when such code changes.
Records are never evicted; the directory may be deleted at any time.

Location: ``$DIFFOPS_CODEGEN_CACHE`` if set (``off`` disables the cache), else
``~/.cache/diffops/codegen``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "diffops-codegen-1"
"""Version of the generator's output; part of every key."""

ENV_VAR = "DIFFOPS_CODEGEN_CACHE"

_LIBRARIES = frozenset({"jax", "jaxlib", "numpy", "scipy", "diffops", "builtins"})


def cache_dir() -> Path | None:
    """The cache directory, or None when ``$DIFFOPS_CODEGEN_CACHE`` is ``off``."""
    value = os.environ.get(ENV_VAR)
    if value is not None and value.strip().lower() in ("off", "0", "false", "no"):
        return None
    if value:
        return Path(value)
    return Path.home() / ".cache" / "diffops" / "codegen"


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def jaxpr_key(closed_jaxpr: Any, name: str, mode: str) -> str:
    """Key of a closed jaxpr: its text, its constants' bytes, ``name`` and ``mode``.

    Args:
        closed_jaxpr: From ``jax.make_jaxpr``.
        name: Function name of the generated code.
        mode: Emission mode asked for (and any other option changing the code).

    Returns:
        Hex digest.
    """
    parts: list[Any] = [FORMAT, name, mode, str(closed_jaxpr)]
    for const in getattr(closed_jaxpr, "consts", ()):
        array = np.asarray(const)
        parts += [array.dtype.str, array.shape, np.ascontiguousarray(array).tobytes()]
    return "j" + _digest(*parts)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _is_library(module_name: str | None) -> bool:
    top = (module_name or "").split(".")[0]
    return top in _LIBRARIES or top in sys.stdlib_module_names


def _fingerprint(value: Any, seen: set[int], depth: int) -> Any:
    """Hashable description of ``value`` (see the module docstring)."""
    if isinstance(value, bool | int | float | complex | str | bytes | type(None)):
        return (type(value).__name__, value)
    if isinstance(value, tuple | list):
        return (type(value).__name__, [_fingerprint(v, seen, depth) for v in value])
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: repr(kv[0]))
        return ("dict", [(repr(k), _fingerprint(v, seen, depth)) for k, v in items])
    if isinstance(value, np.ndarray | np.generic) or (
        hasattr(value, "__array__") and hasattr(value, "shape")
    ):
        array = np.asarray(value)
        return ("array", array.dtype.str, array.shape, _digest(array.tobytes()))
    if isinstance(value, types.ModuleType):
        return ("module", value.__name__)
    if isinstance(value, types.FunctionType):
        if depth > 12 or id(value) in seen:
            return ("function", value.__module__, value.__qualname__)
        seen.add(id(value))
        if _is_library(value.__module__):
            # Its code is covered by the library's version; what it closes over
            # (e.g. the user's function inside a diffops or JAX wrapper) is not.
            return (
                "function",
                value.__module__,
                value.__qualname__,
                _cells(value, seen, depth + 1),
                _fingerprint(value.__defaults__, seen, depth + 1),
            )
        return _function_fingerprint(value, seen, depth + 1)
    wrapped = getattr(value, "__wrapped__", None)
    if wrapped is not None and wrapped is not value:  # jax.jit, functools.wraps
        return ("wrapped", type(value).__qualname__, _fingerprint(wrapped, seen, depth))
    func = getattr(value, "func", None)
    if callable(func) and hasattr(value, "args"):  # functools.partial
        return (
            "partial",
            _fingerprint(func, seen, depth),
            _fingerprint(tuple(value.args), seen, depth),
            _fingerprint(dict(getattr(value, "keywords", {}) or {}), seen, depth),
        )
    text = repr(value)
    if " at 0x" in text or len(text) > 200:
        text = ""
    return ("object", type(value).__module__, type(value).__qualname__, text)


def _code_fingerprint(code: types.CodeType) -> Any:
    consts = [
        _code_fingerprint(c) if isinstance(c, types.CodeType) else repr(c)
        for c in code.co_consts
    ]
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars)


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _names(c)
    return names


def _cells(fun: types.FunctionType, seen: set[int], depth: int) -> list[Any]:
    cells = []
    for cell in fun.__closure__ or ():
        try:
            cells.append(_fingerprint(cell.cell_contents, seen, depth))
        except ValueError:  # empty cell
            cells.append(None)
    return cells


def _function_fingerprint(fun: types.FunctionType, seen: set[int], depth: int) -> Any:
    code = fun.__code__
    cells = _cells(fun, seen, depth)
    names = sorted(_names(code))
    reads = []
    for n in names:
        if n in fun.__globals__:
            value = fun.__globals__[n]
            reads.append((n, _fingerprint(value, seen, depth)))
            if isinstance(value, types.ModuleType) and not _is_library(value.__name__):
                for attr in names:
                    target = getattr(value, attr, None)
                    if isinstance(target, types.FunctionType):
                        reads.append((f"{n}.{attr}", _fingerprint(target, seen, depth)))
    return (
        "function",
        fun.__module__,
        fun.__qualname__,
        _code_fingerprint(code),
        _fingerprint(fun.__defaults__, seen, depth),
        _fingerprint(fun.__kwdefaults__, seen, depth),
        cells,
        reads,
    )


def function_key(fun: Any, *example_args: Any, salt: str = "") -> str:
    """Key of a Python function traced at arguments of these shapes and dtypes.

    Computed without importing JAX (see the module docstring for what it covers).

    Args:
        fun: The function that would be traced.
        *example_args: Arrays (anything with ``shape`` and ``dtype``, or array-like),
            flat.
        salt: Extra text, e.g. a version of code the key cannot see.

    Returns:
        Hex digest.
    """
    avals = []
    for arg in example_args:
        if hasattr(arg, "shape") and hasattr(arg, "dtype"):
            avals.append((tuple(arg.shape), str(arg.dtype)))
        else:
            array = np.asarray(arg)
            avals.append((array.shape, str(array.dtype)))
    parts = [
        FORMAT,
        salt,
        sys.version,
        _version("jax"),
        _version("diffops"),
        avals,
        repr(_fingerprint(fun, set(), 0)),
    ]
    return "f" + _digest(*parts)


def load(key: str) -> dict[str, Any] | None:
    """The record stored under ``key``, or None."""
    directory = cache_dir()
    if directory is None:
        return None
    path = directory / f"{key}.json"
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("format") == FORMAT else None


def store(key: str, record: dict[str, Any]) -> None:
    """Store ``record`` under ``key`` (atomically; errors are ignored)."""
    directory = cache_dir()
    if directory is None:
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({**record, "format": FORMAT}))
        os.replace(tmp, directory / f"{key}.json")
    except OSError:
        pass
