"""Array mode: one NumPy statement per equation, correct at any size.

Each equation becomes ``name = <NumPy expression>`` from its rule in
:data:`~diffops.codegen.primitives.RULES`; loop and branch bodies become functions of
their own, called by the runtime helpers ``_scan``, ``_while`` and ``_cond``.

Outputs never share memory with an input, a constant or another output: an output
that may (a reshape, slice or broadcast of one of them) is copied.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffops.codegen.ir import Atom, Lit, Program, Var
from diffops.codegen.module import Module
from diffops.codegen.primitives import ELEMENTWISE, RULES, Call, literal

_WEAK = frozenset({np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)})


def emit_array_function(
    module: Module,
    program: Program,
    name: str,
    *,
    top: bool = True,
    packed_inputs: int = 0,
    packed_outputs: int = 0,
) -> str:
    """Write ``program`` as a NumPy function into ``module``.

    Args:
        module: The module to add the function (and its constants) to.
        program: The (simplified) program.
        name: Function name.
        top: A public entry point (outputs copied where they could share memory,
            NumPy warnings silenced, 0-d outputs as arrays) rather than a loop or
            branch body.
        packed_inputs: The first this many inputs arrive as one flat sequence of
            their elements (see :func:`diffops.codegen.generate`).
        packed_outputs: The first this many outputs leave as one flat float64 array
            of their elements.

    Returns:
        ``name``.
    """
    module.reserve(name)
    names: dict[int, str] = {v.id: f"a{i}" for i, v in enumerate(program.inputs)}
    # Where a value's memory comes from: an input, a constant, or itself.
    root: dict[int, Any] = {v.id: ("input", v.id) for v in program.inputs}
    readonly: set[int] = set()
    lines: list[str] = []
    count = 0
    offset = 0
    if packed_inputs:
        lines.append("p = np.asarray(p, dtype=np.float64)")
    for i, var in enumerate(program.inputs[:packed_inputs]):
        size, shape = var.aval.size, var.aval.shape
        line = f"a{i} = p[{offset}:{offset + size}].reshape({shape!r})"
        if var.aval.dtype != np.float64:
            line += f".astype({_dtype_code(var.aval.dtype)})"
        lines.append(line)
        offset += size

    def text(atom: Atom, elementwise: bool) -> str:
        if isinstance(atom, Var):
            return names[atom.id]
        value = atom.value
        # 0-d constants are Python literals where NumPy treats them as weakly
        # typed (next to an array operand) or where their dtype is Python's own.
        weak = elementwise or (value.dtype in _WEAK and value.dtype.kind != "f")
        if value.ndim == 0 and weak:
            return literal(value.item())
        return module.constant(value)

    for eqn in program.eqns:
        rule = RULES[eqn.prim]
        subs: dict[str, Any] = {}
        for key, value in eqn.params.items():
            if isinstance(value, Program):
                subs[key] = emit_array_function(
                    module, value, module.fresh(f"_{name}_body"), top=False
                )
            elif isinstance(value, tuple) and value and isinstance(value[0], Program):
                subs[key] = tuple(
                    emit_array_function(
                        module, v, module.fresh(f"_{name}_branch"), top=False
                    )
                    for v in value
                )
        call = Call(
            tuple(text(a, rule.kind == ELEMENTWISE) for a in eqn.inputs),
            eqn.params,
            tuple(a.aval for a in eqn.inputs),
            tuple(o.aval for o in eqn.outputs),
            subs,
        )
        expr = rule.array(call)
        targets = []
        for out in eqn.outputs:
            names[out.id] = f"v{count}"
            targets.append(f"v{count}")
            count += 1
            first = eqn.inputs[0] if eqn.inputs else None
            if rule.view and isinstance(first, Var):
                root[out.id] = root.get(first.id, ("value", first.id))
                if first.id in readonly:
                    readonly.add(out.id)
            elif rule.view and isinstance(first, Lit):
                root[out.id] = ("constant", 0)
            else:
                root[out.id] = ("value", out.id)
            if eqn.prim in ("broadcast_in_dim", "iota"):
                readonly.add(out.id)
        if rule.tuple_result or len(targets) > 1:
            lines.append(f"{', '.join(targets)}, = {expr}")
        else:
            lines.append(f"{targets[0]} = {expr}")

    results = []
    returned: set[Any] = set()
    for atom in program.outputs:
        if not top:
            results.append(text(atom, False))
            continue
        dtype = f"dtype={_dtype_code(atom.aval.dtype)}"
        if isinstance(atom, Lit):
            scalar = "[()]" if atom.aval.shape == () else ""
            results.append(f"np.array({module.constant(atom.value)}){scalar}")
            continue
        r = root.get(atom.id, ("value", atom.id))
        name_text = names[atom.id]
        if r[0] != "value" or r in returned or atom.id in readonly:
            results.append(f"np.array({name_text}, {dtype})")
        elif atom.aval.shape == () or atom.aval.dtype != np.float64:
            results.append(f"np.asarray({name_text}, {dtype})")
        else:
            results.append(name_text)
        returned.add(r)
        if atom.aval.shape == ():  # a NumPy scalar, as NumPy's reductions return
            results[-1] += "[()]"

    if packed_outputs:
        parts = []
        for atom in program.outputs[:packed_outputs]:
            part = (
                names[atom.id] if isinstance(atom, Var) else module.constant(atom.value)
            )
            parts.append(f"np.ravel({part}), ")
        flat = f"np.concatenate(({''.join(parts)}), dtype=np.float64)"
        results = [flat, *results[packed_outputs:]]
    params = ["p"] if packed_inputs else []
    params += [f"a{i}" for i in range(packed_inputs, len(program.inputs))]
    args = ", ".join(params)
    ret = "return (" + "".join(r + ", " for r in results) + ")"
    if top:
        body = ['with np.errstate(all="ignore"):']
        body += ["    " + line for line in lines] + ["    " + ret]
    else:
        body = [*lines, ret]
    module.add_function(
        f"def {name}({args}):\n" + "\n".join("    " + line for line in body)
    )
    return name


def _dtype_code(dtype: np.dtype[Any]) -> str:
    from diffops.codegen.primitives import dtype_text

    return dtype_text(dtype)
