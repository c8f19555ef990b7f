"""A standalone Python snippet that shows one disagreement.

The snippet defines the function in every dialect involved, the point, the extra
arguments of both calls and the closure argument as exact literals, makes the calls
the fuzz test made (the first call, then the second one when the disagreement is in
the second), and prints what disagrees. It needs only diffops and the frameworks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fuzz.emit import IMPORTS, dialect_of, literal, source
from fuzz.run import SPARSE_OPS, Case, Disagreement, backend_options, reference_pattern


def value_literal(value: Any) -> str:
    """Python source for an extra argument: arrays, dicts, tuples, lists."""
    if value is None:
        return "None"
    if isinstance(value, dict):
        items = ", ".join(f"{k!r}: {value_literal(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, tuple):
        inner = ", ".join(value_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(value_literal(v) for v in value) + "]"
    array = np.asarray(value)
    return f"np.array({literal(array.tolist())})"


def options_literal(options: dict[str, Any]) -> str:
    return "".join(f", {k}={v!r}" for k, v in options.items())


def snippet(case: Case, finding: Disagreement) -> str:
    """The repro of ``finding`` for ``case``."""
    backends = [b for b in finding.backends + finding.against if b in _BACKENDS]
    dialects = sorted({dialect_of(b) for b in backends}, key=_DIALECT_ORDER.index)
    lines = [
        f'"""diffops fuzz repro: {finding.summary()}"""',
        "import numpy as np",
        "",
        "import diffops",
        *[IMPORTS[d] for d in dialects],
        "",
    ]
    for dialect in dialects:
        lines.append(source(case.spec, dialect, name=f"f_{dialect}"))
    lines.append(f"x = {value_literal(case.x)}")
    call_args = []
    for call in case.calls:
        lines.append(f"args{call} = {_args_literal(case, call)}")
        call_args.append(f"args{call}")
    op = finding.op
    closure_arg = case.closure_args.get((op, finding.call))
    if closure_arg is not None:
        lines.append(f"m = {value_literal(closure_arg)}  # the closure's argument")
    if finding.kind == "sparse" and finding.sparsity == "given":
        lines.append(f"pattern = {_pattern_literal(case, op)}  # a valid structure")
    lines.append("")
    lines.append("")
    lines.append("def run(backend, func, **options):")
    lines.append(f"    d = diffops.{op}(func, backend=backend, **options)")
    if finding.call:
        lines.append("    d(x, *args0)  # the first call, with other extra arguments")
    lines.append(f"    out = d(x, *args{finding.call})")
    lines.append(
        "    return [o(m) if callable(o) else o for o in out]"
        if closure_arg is not None
        else "    return list(out)"
    )
    lines.append("")
    lines.append("")
    lines += _checks(case, finding)
    return "\n".join(lines) + "\n"


def _checks(case: Case, finding: Disagreement) -> list[str]:
    """The lines that make the disagreeing calls and show the disagreement."""
    op = finding.op
    backend = finding.backends[0]

    def run(backend: str, sparsity: str = "") -> str:
        options = dict(backend_options(case, backend, op))
        if sparsity:
            options = {"sparsity": _Raw(sparsity), **options}
        return f"run({backend!r}, f_{dialect_of(backend)}{options_literal(options)})"

    if finding.kind == "error":
        return [f"{run(backend)}  # raises"]
    if finding.kind == "cross":
        index = _label_index(op, finding.label)
        other = finding.against[0]
        return [
            f"a = {run(backend)}[{index}]",
            f"b = {run(other)}[{index}]",
            f"print({backend!r}, a)",
            f"print({other!r}, b)",
            "np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)",
        ]
    if finding.kind == "fd":
        func = f"f_{dialect_of(backend)}"
        options = options_literal(backend_options(case, backend, op))
        return [
            f"d = diffops.{op}({func}, backend={backend!r}{options})",
            *(["d(x, *args0)"] if finding.call else []),
            f"args = args{finding.call}",
            f"report = diffops.check_derivatives({func}, x, args=args, {op}=d)",
            "print(report)",
            "assert report.passed",
        ]
    if finding.kind == "sparse":
        matrix = SPARSE_OPS[op]
        pattern = '"detect"' if finding.sparsity == "detect" else "pattern"
        return [
            f"dense = {run(backend)}",
            f"sparse = {run(backend, pattern)}",
            f"sparse[{matrix}] = sparse[{matrix}].toarray()",
            "for s, d in zip(sparse, dense, strict=True):",
            "    s = np.reshape(s, np.shape(d)) if np.size(s) == np.size(d) else s",
            "    np.testing.assert_allclose(s, d, rtol=1e-9, atol=1e-12)",
        ]
    return [f"# harness self-check: {finding.detail}"]


class _Raw(str):
    """A string shown without quotes in an options literal."""

    def __repr__(self) -> str:
        return str(self)


_BACKENDS = ("jax", "jax_nojit", "autograd", "torch", "symnum")
_DIALECT_ORDER = ["jax", "torch", "autograd", "symnum"]


def _args_literal(case: Case, call: int) -> str:
    if case.data[call] is None:
        return "()"
    return f"({value_literal(case.data[call])},)"


def _label_index(op: str, label: str) -> int:
    from diffops.operators import OPERATORS

    names = OPERATORS[op].outputs
    name = label.removesuffix("(m)")
    return names.index(name) if name in names else 0


def _pattern_literal(case: Case, op: str) -> str:
    pattern = reference_pattern(case, op).astype(int).tolist()
    return f"np.array({literal(pattern)}, dtype=bool)"


def report(case: Case, found: list[Disagreement], max_repros: int = 3) -> str:
    """Every disagreement of one case, and a repro for the first few distinct ones."""
    spec = case.spec
    lines = [
        f"{len(found)} disagreement(s) for a function of x with shape {spec.in_shape} "
        f"(value shape {spec.root.shape}; uses {', '.join(sorted(spec.used())) or 'x'};"
        f" seed {case.seed}):",
        *(f"  {finding.summary()}" for finding in found),
    ]
    shown: set[tuple[str, str, tuple[str, ...]]] = set()
    for finding in found:
        key = (finding.kind, finding.op, finding.backends)
        if key in shown or len(shown) >= max_repros:
            continue
        shown.add(key)
        lines += ["", f"# ---- repro: {finding.summary()}", snippet(case, finding)]
    return "\n".join(lines)
