"""Simplification of a :class:`~diffops.codegen.ir.Program` before emission.

One forward pass does, equation by equation:

- forwarding: identity primitives (``copy``, ``stop_gradient``, ...) and operations
  that change nothing (a reshape or broadcast to the same shape, a convert to the same
  dtype, a transpose by the identity, a full slice, a reduction over no axes, a
  multiplication by one, an addition of zero) are replaced by their input;
- constant folding: an equation whose inputs are all constants is evaluated (if its
  result is small: :data:`FOLD_LIMIT` elements); ``0 * x`` is *not* folded, since
  it is NaN where ``x`` is infinite or NaN (array code follows IEEE as XLA does);
- broadcast operands: an element-wise operation on ``broadcast_in_dim`` of a 0-d
  value reads the 0-d value itself (NumPy broadcasts it);
- identity matrices: ``dot_general`` with an identity matrix (``jacfwd``'s basis,
  ``eq(iota, iota)`` converted to floats, or such a constant) is a transpose of the
  other operand;
- common subexpressions: equal primitive, parameters and inputs compute once.

A backward pass then removes equations whose results are unused. The passes repeat
until nothing changes. Sub-programs (loop and branch bodies) are simplified too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from diffops.codegen.ir import Atom, Aval, Eqn, Lit, Program, Var
from diffops.codegen.primitives import (
    CONTROL,
    ELEMENTWISE,
    IDENTITY,
    RULES,
    evaluate,
)

FOLD_LIMIT = 4096
"""Largest constant (in elements) that folding creates."""


def simplify(program: Program) -> Program:
    """Simplify until nothing changes (at most a few rounds).

    Args:
        program: The program (not modified).

    Returns:
        An equivalent program with the same inputs and outputs.
    """
    for _ in range(8):
        before = len(program.eqns)
        program = _dead_code(_forward_pass(program))
        if len(program.eqns) == before:
            break
    return program


def _same(atom: Atom, aval: Aval) -> bool:
    return atom.aval.shape == aval.shape and atom.aval.dtype == aval.dtype


def _constant(atom: Atom) -> np.ndarray[Any, Any] | None:
    return atom.value if isinstance(atom, Lit) else None


def _all_equal(atom: Atom, value: float) -> bool:
    c = _constant(atom)
    if c is None or c.size > FOLD_LIMIT:
        return False
    return bool(np.all(c == value)) and c.size > 0


def _forwarded(eqn: Eqn) -> Atom | None:
    """The input that an equation's single output equals, if it changes nothing."""
    p, ins, out = eqn.prim, eqn.inputs, eqn.outputs[0].aval
    first = ins[0] if ins else None
    if first is None:
        return None
    if p in ("reshape", "squeeze", "broadcast_in_dim", "rev", "pad"):
        if p == "rev" and eqn.params["dimensions"]:
            return None
        if p == "pad" and any(any(v) for v in eqn.params["padding_config"]):
            return None
        return first if _same(first, out) else None
    if p == "convert_element_type":
        return first if _same(first, out) else None
    if p == "transpose":
        perm = tuple(eqn.params["permutation"])
        return first if perm == tuple(range(len(perm))) else None
    if p == "slice":
        return first if _same(first, out) else None
    if p == "dynamic_slice":
        return first if _same(first, out) else None
    if p in ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod"):
        return first if not eqn.params["axes"] else None
    if p in ("concatenate", "select_n", "split") and len(ins) == 1:
        if p == "split" and len(eqn.params["sizes"]) != 1:
            return None
        return first
    if p == "select_n" and len(ins) == 2:
        return ins[1]
    if p in ("mul",):
        for a, b in ((ins[0], ins[1]), (ins[1], ins[0])):
            if _all_equal(a, 1) and _same(b, out):
                return b
    if p in ("add", "add_any"):
        for a, b in ((ins[0], ins[1]), (ins[1], ins[0])):
            if _all_equal(a, 0) and _same(b, out):
                return b
    if p == "sub" and _all_equal(ins[1], 0) and _same(ins[0], out):
        return ins[0]
    if p == "div" and _all_equal(ins[1], 1) and _same(ins[0], out):
        return ins[0]
    return None


def _fold(eqn: Eqn) -> list[Lit] | None:
    """Constant results of an equation, or None."""
    rule = RULES.get(eqn.prim)
    if rule is None or rule.kind == CONTROL:
        return None
    outs = tuple(o.aval for o in eqn.outputs)
    if any(o.size > FOLD_LIMIT for o in outs):
        return None
    values = [_constant(a) for a in eqn.inputs]
    if any(v is None for v in values):
        return None
    ins = tuple(a.aval for a in eqn.inputs)
    try:
        results = evaluate(eqn.prim, eqn.params, values, ins, outs)
    except Exception:
        return None
    return [
        Lit(np.array(np.asarray(r, dtype=o.dtype).reshape(o.shape)))
        for r, o in zip(results, outs, strict=True)
    ]


def _lit_key(lit: Lit) -> Any:
    v = lit.value
    if v.size > 64:
        return ("lit", id(lit))
    return ("lit", v.dtype.str, v.shape, v.tobytes())


def _atom_key(atom: Atom) -> Any:
    return ("var", atom.id) if isinstance(atom, Var) else _lit_key(atom)


def _params_key(params: dict[str, Any]) -> Any:
    parts = []
    for k in sorted(params):
        v = params[k]
        if isinstance(v, Program) or (
            isinstance(v, tuple) and any(isinstance(x, Program) for x in v)
        ):
            return None
        parts.append((k, repr(v)))
    return tuple(parts)


def _forward_pass(program: Program) -> Program:
    env: dict[int, Atom] = {}
    producers: dict[int, Eqn] = {}
    seen: dict[Any, list[Var]] = {}
    eqns: list[Eqn] = []
    identities = _Identities()

    def read(atom: Atom) -> Atom:
        while isinstance(atom, Var) and atom.id in env:
            atom = env[atom.id]
        return atom

    for old in program.eqns:
        params = dict(old.params)
        for k, v in params.items():
            if isinstance(v, Program):
                params[k] = simplify(v)
            elif isinstance(v, tuple) and v and all(isinstance(x, Program) for x in v):
                params[k] = tuple(simplify(x) for x in v)
        eqn = Eqn(old.prim, [read(a) for a in old.inputs], old.outputs, params)
        if eqn.prim in IDENTITY:
            for o, i in zip(eqn.outputs, eqn.inputs, strict=True):
                env[o.id] = i
            continue
        if len(eqn.outputs) == 1:
            same = _forwarded(eqn)
            if same is not None:
                env[eqn.outputs[0].id] = same
                continue
        folded = _fold(eqn)
        if folded is not None:
            for o, lit in zip(eqn.outputs, folded, strict=True):
                env[o.id] = lit
            continue
        identities.record(eqn)
        if eqn.prim == "dot_general":
            eqn = identities.dot(eqn)
            if eqn.prim == "transpose" and _forwarded(eqn) is not None:
                env[eqn.outputs[0].id] = eqn.inputs[0]
                continue
        rule = RULES.get(eqn.prim)
        if rule is not None and rule.kind == ELEMENTWISE and len(eqn.inputs) > 1:
            eqn.inputs = _unbroadcast(eqn, producers)
        key = None
        params_key = _params_key(eqn.params)
        if params_key is not None:
            key = (eqn.prim, params_key, tuple(_atom_key(a) for a in eqn.inputs))
            if key in seen:
                for o, prev in zip(eqn.outputs, seen[key], strict=True):
                    env[o.id] = prev
                continue
            seen[key] = eqn.outputs
        for o in eqn.outputs:
            producers[o.id] = eqn
        eqns.append(eqn)
    outputs = [read(a) for a in program.outputs]
    return Program(program.inputs, outputs, eqns)


class _Identities:
    """Which values are identity matrices (``eye(n)`` of any dtype)."""

    def __init__(self) -> None:
        self.iota_dim: dict[int, int] = {}
        self.eye: set[int] = set()

    def is_eye(self, atom: Atom) -> bool:
        if isinstance(atom, Var):
            return atom.id in self.eye
        v = atom.value
        return (
            v.ndim == 2
            and v.shape[0] == v.shape[1]
            and v.size <= FOLD_LIMIT
            and bool(np.array_equal(v, np.eye(v.shape[0])))
        )

    def record(self, eqn: Eqn) -> None:
        out = eqn.outputs[0]
        square = len(out.aval.shape) == 2 and out.aval.shape[0] == out.aval.shape[1]
        if not square:
            return
        if eqn.prim == "iota":
            self.iota_dim[out.id] = int(eqn.params["dimension"])
        elif eqn.prim == "eq":
            dims = {
                self.iota_dim.get(a.id) if isinstance(a, Var) else None
                for a in eqn.inputs
            }
            if dims == {0, 1}:
                self.eye.add(out.id)
        elif eqn.prim == "convert_element_type" and self.is_eye(eqn.inputs[0]):
            self.eye.add(out.id)

    def dot(self, eqn: Eqn) -> Eqn:
        """``eqn``, or a transpose if it multiplies by an identity matrix."""
        (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
        lhs, rhs = eqn.inputs
        out = eqn.outputs[0]
        if lb or rb or len(lc) != 1:
            return eqn
        for eye, other, other_dim, first in (
            (rhs, lhs, lc[0], False),
            (lhs, rhs, rc[0], True),
        ):
            if not self.is_eye(eye) or other.aval.dtype != out.aval.dtype:
                continue
            rest = [d for d in range(len(other.aval.shape)) if d != other_dim]
            perm = [other_dim, *rest] if first else [*rest, other_dim]
            return Eqn("transpose", [other], eqn.outputs, {"permutation": tuple(perm)})
        return eqn


def _unbroadcast(eqn: Eqn, producers: dict[int, Eqn]) -> list[Atom]:
    """Inputs with broadcasts of 0-d values replaced by the 0-d values."""
    out_shape = eqn.outputs[0].aval.shape
    inputs = list(eqn.inputs)
    for i, atom in enumerate(inputs):
        source = None
        if isinstance(atom, Var) and atom.id in producers:
            p = producers[atom.id]
            if p.prim == "broadcast_in_dim" and p.inputs[0].aval.shape == ():
                source = p.inputs[0]
        elif isinstance(atom, Lit) and atom.value.size > 1:
            flat = atom.value.reshape(-1)
            if bool(np.all(flat == flat[0])) and not (
                isinstance(flat[0], np.floating) and math.isnan(float(flat[0]))
            ):
                source = Lit(np.array(flat[0]))
        others_full = any(
            a.aval.shape == out_shape for j, a in enumerate(inputs) if j != i
        )
        if source is not None and others_full:
            inputs[i] = source
    return inputs


def _dead_code(program: Program) -> Program:
    used: set[int] = {a.id for a in program.outputs if isinstance(a, Var)}
    kept: list[Eqn] = []
    for eqn in reversed(program.eqns):
        if not any(o.id in used for o in eqn.outputs):
            continue
        kept.append(eqn)
        used.update(a.id for a in eqn.inputs if isinstance(a, Var))
    kept.reverse()
    return Program(program.inputs, program.outputs, kept)
