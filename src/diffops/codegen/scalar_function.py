"""Scalar mode's function: a program's straight-line code, with its fallback.

:func:`emit_scalar_function` executes the program symbolically
(:class:`~diffops.codegen.scalar.ScalarEmitter`), drops dead statements, and writes a
function that unpacks its inputs into locals, checks they are finite, runs the
statements and packs the outputs, calling the array-mode function of the same
program where ``math`` raises.
"""

from __future__ import annotations

import numpy as np

from diffops.codegen.ir import Aval, Program
from diffops.codegen.module import Module
from diffops.codegen.primitives import dtype_text, literal
from diffops.codegen.scalar import ScalarEmitter
from diffops.codegen.scalar_terms import Objects, Stmt, Term, cast, from_list, kind_of


class ScalarFunction:
    """Statistics of an emitted scalar function (for choosing the mode).

    Attributes:
        statements: Statements after dead-code removal.
        bridges: NumPy calls among them.
        unpacked: Input elements unpacked into locals.
        packed: Output elements packed into arrays.
    """

    def __init__(self, statements: int, bridges: int, unpacked: int, packed: int):
        self.statements = statements
        self.bridges = bridges
        self.unpacked = unpacked
        self.packed = packed


def emit_scalar_function(
    module: Module,
    program: Program,
    name: str,
    fallback: str,
    budget: int,
    *,
    packed_inputs: int = 0,
    packed_outputs: int = 0,
) -> ScalarFunction:
    """Write ``program`` as straight-line scalar code into ``module``.

    Args:
        module: The module to add the function to.
        program: The (simplified) program.
        name: Function name.
        fallback: Name of the array-mode function of the same program, called when
            ``math`` raises (division by zero, overflow, a domain error).
        budget: Statement budget.
        packed_inputs: The first this many inputs arrive as one flat sequence of
            their elements (see :func:`diffops.codegen.generate`).
        packed_outputs: The first this many outputs leave as one flat tuple of
            their elements.

    Returns:
        Statistics of the function.

    Raises:
        TooLarge: The code would exceed ``budget`` statements.
    """
    em = ScalarEmitter(module, budget)
    outputs = em.run(program, _symbolic_inputs(em, program, packed_inputs))
    kept, used = _live(em.stmts, outputs)
    lines, unpacked = _input_lines(program, packed_inputs, used)
    for stmt in kept:
        if len(stmt.targets) == 1 and not stmt.expr.startswith("np.ravel("):
            lines.append(f"{stmt.targets[0]} = {stmt.expr}")
        else:
            lines.append(f"{', '.join(stmt.targets)}, = {stmt.expr}")
    lines.append(_return_line(program, outputs, packed_outputs))
    names = ["p"] if packed_inputs else []
    names += [f"a{i}" for i in range(packed_inputs, len(program.inputs))]
    params = ", ".join(names)
    body = "\n".join("        " + line for line in lines)
    module.reserve(name)
    module.add_function(
        f"def {name}({params}):\n"
        f"    try:\n{body}\n"
        "    except (ArithmeticError, ValueError):\n"
        "        # math raised where IEEE arithmetic gives inf or NaN: use NumPy\n"
        f"        return {fallback}({params})"
    )
    bridges = sum(1 for s in kept if s.targets[0].startswith("r"))
    packed = sum(o.size for o in outputs)
    return ScalarFunction(len(kept), bridges, unpacked, packed)


def _symbolic_inputs(
    em: ScalarEmitter, program: Program, packed_inputs: int
) -> list[Objects]:
    """One :class:`Term` per input element (``a3_0``, ``a3_1``, ...)."""
    args = []
    for k, var in enumerate(program.inputs):
        kind = kind_of(var.aval.dtype)
        terms = [Term(f"a{k}_{j}", kind, em) for j in range(var.aval.size)]
        if k >= packed_inputs:  # packed inputs have no array of their own
            for j, t in enumerate(terms):
                em.inputs[t.name] = (k, j)
        em.input_sizes.append(var.aval.size)
        em.input_shapes.append(var.aval.shape)
        args.append(from_list(terms).reshape(var.aval.shape))
    return args


def _live(stmts: list[Stmt], outputs: list[Objects]) -> tuple[list[Stmt], set[str]]:
    """The statements the outputs need (dead code dropped), and the locals read."""
    used: set[str] = set()
    for out in outputs:
        used.update(e.name for e in out.reshape(-1).tolist() if isinstance(e, Term))
    kept: list[Stmt] = []
    for stmt in reversed(stmts):
        if any(t in used for t in stmt.targets):
            kept.append(stmt)
            used.update(stmt.deps)
    kept.reverse()
    return kept, used


def _input_lines(
    program: Program, packed_inputs: int, used: set[str]
) -> tuple[list[str], int]:
    """Lines unpacking the used inputs into locals and checking they are finite."""
    lines = []
    unpacked = 0
    flat_names: list[str] = []
    conversions = []
    for k, var in enumerate(program.inputs[:packed_inputs]):
        names = [f"a{k}_{j}" for j in range(var.aval.size)]
        flat_names += names
        kind = kind_of(var.aval.dtype)
        if kind != "f":
            convert = "int" if kind == "i" else "bool"
            conversions += [f"{n} = {convert}({n})" for n in names if n in used]
    if any(n in used for n in flat_names):
        unpacked += len(flat_names)
        lines.append(f"{''.join(n + ', ' for n in flat_names)}= p")
        lines += conversions
    for k, var in enumerate(program.inputs):
        if k < packed_inputs:
            continue
        names = [f"a{k}_{j}" for j in range(var.aval.size)]
        if not any(n in used for n in names):
            continue
        unpacked += len(names)
        lines.append(_unpack(f"a{k}", names, var.aval))
    checked = [
        f"a{k}_{j}"
        for k, var in enumerate(program.inputs)
        if var.aval.dtype.kind == "f"
        for j in range(var.aval.size)
        if f"a{k}_{j}" in used
    ]
    if checked:
        # NaN if any is infinite or NaN (or if the sum overflows: still correct).
        total = " + ".join(checked)
        lines.append(f"if ({total}) * 0.0 != 0.0:")
        lines.append("    raise ValueError('non-finite input')")
    return lines, unpacked


def _return_line(program: Program, outputs: list[Objects], packed_outputs: int) -> str:
    """``return (...)``: packed residuals first, then each output as an array."""
    results = [
        _pack(out, var.aval)
        for out, var in zip(
            outputs[packed_outputs:], program.outputs[packed_outputs:], strict=True
        )
    ]
    if packed_outputs:
        flat = [e for out in outputs[:packed_outputs] for e in out.reshape(-1).tolist()]
        items = [e.name if isinstance(e, Term) else literal(e) for e in flat]
        results.insert(0, "(" + "".join(i + ", " for i in items) + ")")
    return "return (" + "".join(r + ", " for r in results) + ")"


def _unpack(arg: str, names: list[str], aval: Aval) -> str:
    if aval.shape == ():
        convert = {"f": "float", "i": "int", "b": "bool"}[kind_of(aval.dtype)]
        return f"{names[0]} = {convert}({arg})"

    def nested(shape: tuple[int, ...], offset: int) -> tuple[str, int]:
        if len(shape) == 1:
            items = names[offset : offset + shape[0]]
            return "(" + "".join(n + ", " for n in items) + ")", offset + shape[0]
        parts = []
        for _ in range(shape[0]):
            text, offset = nested(shape[1:], offset)
            parts.append(text)
        return "(" + "".join(p + ", " for p in parts) + ")", offset

    pattern, _ = nested(aval.shape, 0)
    return f"{pattern[1:-1]} = {arg}.tolist()"


def _pack(out: Objects, aval: Aval) -> str:
    flat = out.reshape(-1).tolist()
    kind = kind_of(aval.dtype)
    items = [e.name if isinstance(e, Term) else literal(cast(e, kind)) for e in flat]
    exact = aval.dtype == np.float64 and all(
        (e.kind if isinstance(e, Term) else "f") == "f" for e in flat
    )
    dtype = "" if exact else f", dtype={dtype_text(aval.dtype)}"
    if aval.size == 0:
        return f"np.zeros({aval.shape!r}{dtype or ', dtype=np.float64'})"
    if aval.shape == ():  # a NumPy scalar, as NumPy's reductions return
        return f"{dtype_text(aval.dtype)}({items[0]})"
    text = f"np.array([{', '.join(items)}]{dtype})"
    return text if len(aval.shape) == 1 else f"{text}.reshape({aval.shape!r})"
