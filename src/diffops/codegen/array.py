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
    writer = _ArrayWriter(module, name, program)
    writer.unpack(packed_inputs)
    for eqn in program.eqns:
        writer.equation(eqn)
    if top:
        results = [writer.output(atom) for atom in program.outputs]
    else:
        results = [writer.text(atom, False) for atom in program.outputs]
    if packed_outputs:
        results = [writer.packed(packed_outputs), *results[packed_outputs:]]
    params = ["p"] if packed_inputs else []
    params += [f"a{i}" for i in range(packed_inputs, len(program.inputs))]
    args = ", ".join(params)
    ret = "return (" + "".join(r + ", " for r in results) + ")"
    if top:
        body = ['with np.errstate(all="ignore"):']
        body += ["    " + line for line in writer.lines] + ["    " + ret]
    else:
        body = [*writer.lines, ret]
    module.add_function(
        f"def {name}({args}):\n" + "\n".join("    " + line for line in body)
    )
    return name


class _ArrayWriter:
    """The lines of one array-mode function, and where each value's memory is from.

    ``root`` maps a value to an input, a constant, or itself (views share their
    operand's root); ``readonly`` holds broadcasts and their views. An output whose
    memory is not its own, or is another output's, is copied.
    """

    def __init__(self, module: Module, name: str, program: Program):
        self.module = module
        self.name = name
        self.program = program
        self.names: dict[int, str] = {
            v.id: f"a{i}" for i, v in enumerate(program.inputs)
        }
        self.root: dict[int, Any] = {v.id: ("input", v.id) for v in program.inputs}
        self.readonly: set[int] = set()
        self.returned: set[Any] = set()
        self.lines: list[str] = []
        self.count = 0

    def unpack(self, packed_inputs: int) -> None:
        """Lines slicing the packed inputs out of ``p``."""
        if packed_inputs:
            self.lines.append("p = np.asarray(p, dtype=np.float64)")
        offset = 0
        for i, var in enumerate(self.program.inputs[:packed_inputs]):
            size, shape = var.aval.size, var.aval.shape
            line = f"a{i} = p[{offset}:{offset + size}].reshape({shape!r})"
            if var.aval.dtype != np.float64:
                line += f".astype({_dtype_code(var.aval.dtype)})"
            self.lines.append(line)
            offset += size

    def text(self, atom: Atom, elementwise: bool) -> str:
        """Code of an operand: a local's name, a literal or a module constant."""
        if isinstance(atom, Var):
            return self.names[atom.id]
        value = atom.value
        # 0-d constants are Python literals where NumPy treats them as weakly
        # typed (next to an array operand) or where their dtype is Python's own.
        weak = elementwise or (value.dtype in _WEAK and value.dtype.kind != "f")
        if value.ndim == 0 and weak:
            return literal(value.item())
        return self.module.constant(value)

    def equation(self, eqn: Any) -> None:
        """The line of one equation (its bodies become functions of their own)."""
        module, name = self.module, self.name
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
            tuple(self.text(a, rule.kind == ELEMENTWISE) for a in eqn.inputs),
            eqn.params,
            tuple(a.aval for a in eqn.inputs),
            tuple(o.aval for o in eqn.outputs),
            subs,
        )
        expr = rule.array(call)
        targets = [self._track(eqn, rule.view, out) for out in eqn.outputs]
        if rule.tuple_result or len(targets) > 1:
            self.lines.append(f"{', '.join(targets)}, = {expr}")
        else:
            self.lines.append(f"{targets[0]} = {expr}")

    def _track(self, eqn: Any, view: bool, out: Var) -> str:
        """Name an equation's output and record where its memory comes from."""
        target = self.names[out.id] = f"v{self.count}"
        self.count += 1
        first = eqn.inputs[0] if eqn.inputs else None
        if view and isinstance(first, Var):
            self.root[out.id] = self.root.get(first.id, ("value", first.id))
            if first.id in self.readonly:
                self.readonly.add(out.id)
        elif view and isinstance(first, Lit):
            self.root[out.id] = ("constant", 0)
        else:
            self.root[out.id] = ("value", out.id)
        if eqn.prim in ("broadcast_in_dim", "iota"):
            self.readonly.add(out.id)
        return target

    def output(self, atom: Atom) -> str:
        """An entry point's output: its own memory, in its dtype; 0-d: a scalar."""
        dtype = f"dtype={_dtype_code(atom.aval.dtype)}"
        scalar = "[()]" if atom.aval.shape == () else ""
        if isinstance(atom, Lit):
            return f"np.array({self.module.constant(atom.value)}){scalar}"
        r = self.root.get(atom.id, ("value", atom.id))
        name_text = self.names[atom.id]
        if r[0] != "value" or r in self.returned or atom.id in self.readonly:
            text = f"np.array({name_text}, {dtype})"
        elif atom.aval.shape == () or atom.aval.dtype != np.float64:
            text = f"np.asarray({name_text}, {dtype})"
        else:
            text = name_text
        self.returned.add(r)
        return text + scalar

    def packed(self, packed_outputs: int) -> str:
        """The first outputs as one flat float64 array."""
        parts = []
        for atom in self.program.outputs[:packed_outputs]:
            part = (
                self.names[atom.id]
                if isinstance(atom, Var)
                else self.module.constant(atom.value)
            )
            parts.append(f"np.ravel({part}), ")
        return f"np.concatenate(({''.join(parts)}), dtype=np.float64)"


def _dtype_code(dtype: np.dtype[Any]) -> str:
    from diffops.codegen.primitives import dtype_text

    return dtype_text(dtype)
