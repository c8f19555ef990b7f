"""The ``diffops`` command line: ``check``, ``demo`` and ``backends``.

Thin by design: each command parses its arguments and calls library code
(:mod:`diffops.demo` runs and prints the checks), and a framework is imported only
when a command needs it. Exit status: 0 when everything passed, 1 when a check
failed, 2 for usage errors (with a message saying what to change, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

USAGE_EXIT = 2


def _names(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    return tuple(dict.fromkeys(names))  # without repeats, in order


class UsageError(Exception):
    """A command-line argument names something that does not exist or is invalid."""


def _check_names(
    kind: str, names: tuple[str, ...] | None, valid: tuple[str, ...]
) -> tuple[str, ...] | None:
    """``names`` if each is in ``valid``; else a :class:`UsageError` with a hint."""
    from diffops.errors import closest

    for name in names or ():
        if name not in valid:
            msg = f"unknown {kind} {name!r}: choose from {', '.join(valid)}."
            raise UsageError(msg + closest(name, valid))
    return names


def _backend_selection(text: str | None) -> tuple[str, ...] | None:
    """Backends named in ``text`` (``None``: every installed one), all installed."""
    from diffops.registry import available_backends, registered_backends
    from diffops.registry import backend as lookup

    if text is not None and text.strip().lower() == "none":
        return ()
    backends = _check_names("backend", _names(text), registered_backends())
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


# ---------------------------------------------------------------------------------
# diffops demo


def _demo(args: argparse.Namespace) -> int:
    from diffops.demo import TOLERANCE, failures, render, run_demo, summary
    from diffops.models import MODELS

    backends = _backend_selection(args.backends) or None
    models = _check_names("model", _names(args.models), tuple(MODELS))
    rows = run_demo(backends, models)
    render(rows)
    bad = failures(rows)
    for r in bad:
        reason = r.note or (
            f"differs from the closed forms by {r.closed_form_error:.2e} > "
            f"{TOLERANCE:.0e}"
        )
        print(f"FAILED: {r.model} · {r.source} · {r.op_name}: {reason}")
    print(
        f"{summary(rows)}: checked against finite differences and against the "
        f"closed forms to {TOLERANCE:.0e}."
    )
    return 1 if bad else 0


# ---------------------------------------------------------------------------------
# diffops check


def _load_module(spec: str) -> tuple[ModuleType, str]:
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
            msg = f"loading {spec} failed: {_error_text(err, path)}"
            raise UsageError(msg) from err
        return module, str(path)
    try:
        return importlib.import_module(spec), spec
    except Exception as err:
        msg = f"cannot import module {spec!r}: {_error_text(err)}"
        raise UsageError(msg) from err


def _error_text(err: BaseException, path: Path | None = None) -> str:
    """``Type: message`` and, if known, the line in the user's file that raised."""
    text = f"{type(err).__name__}: {err}".strip()
    if isinstance(err, SyntaxError) and err.lineno is not None:
        return f"{text.splitlines()[0]}"
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


def _function(module: ModuleType, where: str, name: str) -> Any:
    from diffops.errors import closest

    func = getattr(module, name, None)
    if func is None:
        defined = sorted(
            key
            for key, value in vars(module).items()
            if callable(value)
            and not key.startswith("_")
            and getattr(value, "__module__", None) == module.__name__
        )
        msg = (
            f"no function {name!r} in {where}; it defines: "
            f"{', '.join(defined) or 'no functions'}.{closest(name, defined)}"
        )
        raise UsageError(msg)
    if not callable(func):
        msg = f"{name!r} in {where} is {type(func).__name__}, not a function."
        raise UsageError(msg)
    return func


def _target(text: str) -> tuple[ModuleType, str, str, Any]:
    """Module, where it was loaded from, the function's name, the function."""
    spec, sep, name = text.rpartition(":")
    if not sep or not spec or not name:
        msg = (
            f"expected PATH.py:FUNC or module:FUNC, got {text!r} "
            f"(e.g. examples/rosenbrock.py:rosenbrock)."
        )
        raise UsageError(msg)
    module, where = _load_module(spec)
    return module, where, name, _function(module, where, name)


def _shape(text: str) -> tuple[int, ...]:
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


def _point(args: argparse.Namespace, func: Any) -> Any:
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
            shape = _shape(args.shape)
            if point.size != math.prod(shape):
                msg = (
                    f"--point has {point.size} numbers, but --shape {args.shape} "
                    f"needs {math.prod(shape)}."
                )
                raise UsageError(msg)
            point = point.reshape(shape)
        return point.astype(dtype)
    if args.shape is not None:
        shape = _shape(args.shape)
    else:
        known = getattr(func, "_arg_shapes", None)  # SymNum functions know it
        if not known:
            msg = (
                "give the input's shape (--shape 3) or a point (--point 0.5,1.0): "
                "the function is evaluated there."
            )
            raise UsageError(msg)
        shape = tuple(known[0])
    rng = np.random.default_rng(args.seed)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def _supplied(
    module: ModuleType, where: str, entries: list[str]
) -> list[tuple[str, str, Any]]:
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
            found.append((op, name, _function(module, where, name)))
    return found


def _check(args: argparse.Namespace) -> int:
    import numpy as np

    from diffops.check import describe_point, numpy_function
    from diffops.demo import (
        as_json,
        check_backends,
        failures,
        header,
        progress,
        render,
        summary,
    )
    from diffops.operators import ALL_DIFF_OPS, OPERATORS

    module, where, name, func = _target(args.target)
    supplied = _supplied(module, where, args.supplied)
    x = _point(args, func)
    try:
        _, value = numpy_function(func, x.astype(np.float64), ())
    except Exception as err:
        path = Path(where) if where.endswith(".py") else None
        msg = (
            f"{name} fails at {describe_point(x)}: {_error_text(err, path)}. Fix the "
            f"function, or choose another --shape or --point."
        )
        raise UsageError(msg) from err
    scalar = np.shape(value) == ()
    ops = _check_names("operator", _names(args.ops), ALL_DIFF_OPS)
    if ops is None:
        ops = tuple(
            op for op in ALL_DIFF_OPS if scalar or not OPERATORS[op].scalar_only
        )
    for op in (*ops, *(s[0] for s in supplied)):
        if OPERATORS[op].scalar_only and not scalar:
            msg = (
                f"{op} needs a scalar function, but {name} returns shape "
                f"{np.shape(value)}: choose from jacobian_and_value, "
                f"mhp_jacobian_and_value, vjp_and_value, jvp_and_value."
            )
            raise UsageError(msg)
    backends = _backend_selection(args.backends)
    if backends is None:
        from diffops.registry import available_backends

        backends = available_backends()
    if not backends and not supplied:
        msg = "nothing to check: --backends none and no --supplied functions."
        raise UsageError(msg)
    steps = len(backends) * (len(ops) + 2) + 2 * len(supplied) + len(ops)
    with progress(steps, "diffops check") as advance:
        rows = check_backends(
            func,
            x,
            ops,
            backends,
            supplied=supplied,
            seed=args.seed,
            rtol=args.rtol,
            atol=args.atol,
            directions=args.directions,
            advance=advance,
        )
    if args.json:
        document = as_json(
            rows,
            target=args.target,
            function=name,
            x=x.tolist(),
            dtype=str(x.dtype),
            seed=args.seed,
        )
        print(json.dumps(document, indent=2))
    else:
        render(rows, title=header(args.target, x, args.seed))
        print(summary(rows) + ".")
    return 1 if failures(rows) else 0


# ---------------------------------------------------------------------------------
# diffops backends


def _backends(args: argparse.Namespace) -> int:
    from diffops.compat import get_backend
    from diffops.registry import registered_backends

    for name in registered_backends():
        record = get_backend(name)
        state = "installed" if record.available else "not installed"
        print(f"{name:12} {state:14} module {record.module.__name__}")
    return 0


def _parser() -> argparse.ArgumentParser:
    from diffops import __version__
    from diffops.models import MODELS
    from diffops.operators import ALL_DIFF_OPS

    parser = argparse.ArgumentParser(
        prog="diffops",
        description="Derivative functions that return the value too, on JAX, "
        "Autograd, SymNum and PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"diffops {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser(
        "check",
        help="check and time a function's derivatives on every backend",
        description="Build the derivatives of a function on every requested "
        "backend, check them (and hand-written ones) against finite differences "
        "and against each other, time them, and print one table. Exit status: 0 "
        "if all pass, 1 if any fails, 2 for usage errors. Backends on which the "
        "function cannot run are reported as not applicable.",
    )
    check.add_argument(
        "target",
        metavar="PATH.py:FUNC",
        help="the function: a file and function name, or module:FUNC",
    )
    check.add_argument(
        "--shape", help="input shape, e.g. 3 or 2,3 or () (random point in [-1, 1])"
    )
    check.add_argument(
        "--point", help="the point, e.g. 0.5,1.0 or '[[1, 2], [3, 4]]' (JSON)"
    )
    check.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64", help="dtype"
    )
    check.add_argument(
        "--ops",
        help="comma-separated operators (default: all that apply): "
        + ", ".join(ALL_DIFF_OPS),
    )
    check.add_argument(
        "--backends",
        help="comma-separated backends, or none (default: all installed)",
    )
    check.add_argument(
        "--supplied",
        action="append",
        default=[],
        metavar="OP=FUNC",
        help="a hand-written derivative function in the same file, e.g. "
        "grad_and_value=my_grad (repeatable)",
    )
    check.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    check.add_argument("--rtol", type=float, help="relative tolerance")
    check.add_argument("--atol", type=float, help="absolute tolerance")
    check.add_argument(
        "--directions",
        type=int,
        default=3,
        help="random closure arguments / directions per check (default 3)",
    )
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(run=_check)

    models = ", ".join(f"{name} ({m.description})" for name, m in MODELS.items())
    demo = commands.add_parser(
        "demo",
        help="check and time every example model on every installed backend",
        description="Check every example model on every installed backend against "
        "finite differences and its closed-form derivatives, and time it. Models: "
        + models
        + ".",
    )
    demo.add_argument(
        "--backends", help="comma-separated backends (default: all installed)"
    )
    demo.add_argument(
        "--models", help=f"comma-separated models (default: all): {', '.join(MODELS)}"
    )
    demo.set_defaults(run=_demo)
    backends = commands.add_parser(
        "backends", help="list backends and whether installed"
    )
    backends.set_defaults(run=_backends)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``diffops`` command line.

    Args:
        argv: Arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit code: 0 on success, 1 if a check failed, 2 for usage errors.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as err:
        parser.exit(USAGE_EXIT, f"diffops {args.command}: error: {err}\n")


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
