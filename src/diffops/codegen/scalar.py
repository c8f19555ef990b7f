"""Scalar mode: straight-line Python on floats, one local variable per element.

The program is executed symbolically at generation time. Every array is a NumPy
*object* array whose elements are either constants (Python numbers) or
:class:`Term` objects naming a local variable of the generated function:

- element-wise primitives write one statement per element (``t7 = math.sin(t3)``),
  folding constants, simplifying ``x * 1``, ``x + 0``, ``x * 0`` and selections by a
  constant predicate, and reusing equal expressions (common subexpressions);
- structural primitives run their NumPy expression on the object arrays, which moves
  elements around at generation time (no code at all for reshapes, slices,
  broadcasts, transposes, pads, gathers with constant indices) and emits the sums and
  products of ``dot_general`` and ``reduce_sum`` through :class:`Term`'s operators;
- anything else (sorting, ``argmax``, indices computed at run time, loops whose trip
  count is not a constant) packs its inputs into arrays and runs NumPy code in the
  middle of the scalar code ("bridges").

Floats are Python floats, whatever the program's float dtype: a float32 program is
computed in float64 and its outputs are rounded to float32 (conversions between
float dtypes inside the program are not rounded either). Integers are Python ints
(no overflow).

Non-finite numbers go through the array code. Scalar code folds ``0 * x`` to ``0``
(the zeros of one-hot bases and paddings make most of a Hessian program's products),
which is exact for finite ``x`` only, and ``math`` raises where IEEE arithmetic gives
inf or NaN (division by zero, ``log(0)``, ``exp`` overflow). So the generated function
checks that its float inputs are finite and calls the array-mode function of the same
program (which gives XLA's IEEE results) if one is not or if ``math`` raises. (A
product or sum that overflows without raising, inside scalar code, is the one case
left where a structural zero stays 0 where XLA gives NaN.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from diffops.codegen.ir import Atom, Aval, Program, Var
from diffops.codegen.module import Module
from diffops.codegen.primitives import (
    CONTROL,
    ELEMENTWISE,
    OPAQUE,
    REDUCTION,
    RULES,
    STRUCTURAL,
    Call,
    dtype_text,
    evaluate,
    literal,
)
from diffops.codegen.scalar_algebra import simplified
from diffops.codegen.scalar_terms import (
    BRIDGE_COST,
    COMMUTATIVE,
    NOT_SIMPLIFIED,
    Objects,
    Stmt,
    Term,
    TooLarge,
    cast,
    concrete,
    from_list,
    kind_of,
    scalar_aval,
    scalar_namespace,
    stack_items,
)


class ScalarEmitter:
    """Symbolic execution of a program into straight-line scalar statements.

    Args:
        module: Receives constants and the functions of bridged loops.
        budget: Largest number of statements (bridges count as several) before
            :class:`TooLarge` is raised.
    """

    def __init__(self, module: Module, budget: int):
        self.module = module
        self.budget = budget
        self.cost = 0
        self.stmts: list[Stmt] = []
        self._cse: dict[str, Any] = {}
        self._count = 0
        self._lit_cache: dict[int, Objects] = {}
        self.inputs: dict[str, tuple[int, int]] = {}  # element name -> (input, index)
        self.bridges = 0
        self.negation_of: dict[str, Term] = {}
        self.input_sizes: list[int] = []
        self.input_shapes: list[tuple[int, ...]] = []

    # -- statements ---------------------------------------------------------------

    def _name(self, prefix: str = "t") -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def _charge(self, cost: int) -> None:
        self.cost += cost
        if self.cost > self.budget:
            raise TooLarge

    def emit(self, expr: str, kind: str, deps: tuple[str, ...]) -> Term:
        """A local holding ``expr`` (an existing one if ``expr`` was seen before)."""
        found = self._cse.get(expr)
        if found is not None:
            return found  # type: ignore[no-any-return]
        self._charge(1)
        term = Term(self._name(), kind, self)
        self.stmts.append(Stmt((term.name,), expr, deps))
        self._cse[expr] = term
        return term

    # -- elements -----------------------------------------------------------------

    def apply(
        self,
        prim: str,
        params: Any,
        elems: list[Any],
        ins: list[Aval],
        out_kind: str,
    ) -> Any:
        """One element of an element-wise primitive (a constant or a :class:`Term`)."""
        simple = simplified(self, prim, params, elems, ins, out_kind)
        if simple is not NOT_SIMPLIFIED:
            return simple
        if not any(isinstance(e, Term) for e in elems):
            return self._fold(prim, params, elems, ins, out_kind)
        rule = RULES[prim]
        assert rule.scalar is not None
        texts = [e.name if isinstance(e, Term) else literal(e) for e in elems]
        if prim in COMMUTATIVE:
            texts.sort()
        call = Call(tuple(texts), params, tuple(ins), (scalar_aval(out_kind),))
        expr = rule.scalar(call)
        for e in elems:
            if isinstance(e, Term) and expr == e.name:
                return e
        deps = tuple(e.name for e in elems if isinstance(e, Term))
        term = self.emit(expr, out_kind, deps)
        if prim == "neg" and isinstance(elems[0], Term):
            self.negation_of[term.name] = elems[0]
        return term

    def _fold(
        self, prim: str, params: Any, elems: list[Any], ins: list[Aval], kind: str
    ) -> Any:
        """A constant element, computed now (IEEE results where ``math`` raises)."""
        rule = RULES[prim]
        texts = [literal(e) for e in elems]
        if rule.scalar is not None:
            call = Call(tuple(texts), params, tuple(ins), (scalar_aval(kind),))
            try:
                value = eval(rule.scalar(call), scalar_namespace())
                return cast(value, kind)
            except (ArithmeticError, ValueError):
                pass
        values = [np.asarray(e, dtype=a.dtype) for e, a in zip(elems, ins, strict=True)]
        (result,) = evaluate(prim, params, values, tuple(ins), (scalar_aval(kind),))
        return cast(np.asarray(result).item(), kind)

    # -- arrays -------------------------------------------------------------------

    def objects(self, value: Any, aval: Aval) -> Objects:
        """``value`` as an object array of ``aval``'s shape with plain elements."""
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        flat = array.reshape(-1).tolist()
        if len(flat) != aval.size:
            flat = np.broadcast_to(array, aval.shape).reshape(-1).tolist()
        kind = kind_of(aval.dtype)
        out = np.empty(len(flat), dtype=object)
        out[:] = [e if isinstance(e, Term) else cast(e, kind) for e in flat]
        return out.reshape(aval.shape)

    def run(self, program: Program, args: list[Objects]) -> list[Objects]:
        """Execute ``program`` on object arrays, emitting statements."""
        env: dict[int, Objects] = {
            v.id: a for v, a in zip(program.inputs, args, strict=True)
        }

        def value(atom: Atom) -> Objects:
            if isinstance(atom, Var):
                return env[atom.id]
            cached = self._lit_cache.get(id(atom))
            if cached is None:
                cached = self._lit_cache[id(atom)] = self.objects(atom.value, atom.aval)
            return cached

        for eqn in program.eqns:
            values = [value(a) for a in eqn.inputs]
            results = self._equation(eqn, values)
            for out, result in zip(eqn.outputs, results, strict=True):
                env[out.id] = result
        return [value(a) for a in program.outputs]

    def _equation(self, eqn: Any, values: list[Objects]) -> list[Objects]:
        kind = RULES[eqn.prim].kind
        if kind == ELEMENTWISE:
            return [self._elementwise(eqn, values)]
        if kind == STRUCTURAL:
            return self._structural(eqn, values)
        if kind == REDUCTION:
            return self._reduction(eqn, values)
        if kind == CONTROL:
            return self._control(eqn, values)
        assert kind == OPAQUE
        return self._bridge(eqn, values)

    def _elementwise(self, eqn: Any, values: list[Objects]) -> Objects:
        aval = eqn.outputs[0].aval
        kind = kind_of(aval.dtype)
        columns = [np.broadcast_to(v, aval.shape).reshape(-1).tolist() for v in values]
        ins = [Aval((), a.aval.dtype) for a in eqn.inputs]
        flat = [
            self.apply(eqn.prim, eqn.params, list(elems), ins, kind)
            for elems in zip(*columns, strict=True)
        ]
        return self.objects(from_list(flat), aval)

    def _structural(self, eqn: Any, values: list[Objects]) -> list[Objects]:
        rule = RULES[eqn.prim]
        args: list[Any] = []
        for i, (v, atom) in enumerate(zip(values, eqn.inputs, strict=True)):
            if i in rule.index_inputs:
                known = concrete(v, atom.aval)
                if known is None:
                    return self._bridge(eqn, values)
                args.append(known)
            else:
                args.append(v)
        ins = tuple(a.aval for a in eqn.inputs)
        outs = tuple(o.aval for o in eqn.outputs)
        try:
            results = evaluate(eqn.prim, eqn.params, args, ins, outs)
        except TooLarge:
            raise
        except Exception:
            return self._bridge(eqn, values)
        return [self.objects(r, o) for r, o in zip(results, outs, strict=True)]

    def _reduction(self, eqn: Any, values: list[Objects]) -> list[Objects]:
        rule = RULES[eqn.prim]
        assert rule.monoid is not None
        (v,) = values
        axes = tuple(eqn.params["axes"])
        aval = eqn.outputs[0].aval
        kind = kind_of(aval.dtype)
        k = math.prod(v.shape[a] for a in axes)
        if k == 0:
            return self._bridge(eqn, values)
        moved = np.moveaxis(v, axes, tuple(range(v.ndim - len(axes), v.ndim)))
        elem = Aval((), eqn.inputs[0].aval.dtype)
        flat = []
        for row in moved.reshape(-1, k).tolist():
            acc = row[0]
            for e in row[1:]:
                acc = self.apply(rule.monoid, {}, [acc, e], [elem, elem], kind)
            flat.append(acc)
        return [self.objects(from_list(flat), aval)]

    def _control(self, eqn: Any, values: list[Objects]) -> list[Objects]:
        params = eqn.params
        if eqn.prim == "cond":
            index = values[0].reshape(-1)[0]
            if isinstance(index, Term):
                return self._bridge(eqn, values)
            branches = params["branches"]
            chosen = min(max(int(index), 0), len(branches) - 1)
            return self.run(branches[chosen], values[1:])
        if eqn.prim == "while":
            nc, nb = int(params["cond_nconsts"]), int(params["body_nconsts"])
            cond_consts, body_consts = values[:nc], values[nc : nc + nb]
            carry = values[nc + nb :]
            while True:
                self._charge(1)
                (pred,) = self.run(params["cond_jaxpr"], cond_consts + carry)
                p = pred.reshape(-1)[0]
                if isinstance(p, Term):
                    return self._bridge(eqn, values)
                if not p:
                    return carry
                carry = self.run(params["body_jaxpr"], body_consts + carry)
        # scan
        nc, ncarry = int(params["num_consts"]), int(params["num_carry"])
        length = int(params["length"])
        consts, carry = values[:nc], values[nc : nc + ncarry]
        xs = values[nc + ncarry :]
        ys: list[list[Any]] = [[None] * length for _ in eqn.outputs[ncarry:]]
        steps = range(length - 1, -1, -1) if params["reverse"] else range(length)
        for i in steps:
            self._charge(1)
            out = self.run(params["jaxpr"], consts + carry + [x[i, ...] for x in xs])
            carry = out[:ncarry]
            for y, value in zip(ys, out[ncarry:], strict=True):
                y[i] = value
        stacked = [
            self.objects(stack_items(y, o.aval), o.aval)
            for y, o in zip(ys, eqn.outputs[ncarry:], strict=True)
        ]
        return carry + stacked

    # -- bridges to NumPy ---------------------------------------------------------

    def _bridge(self, eqn: Any, values: list[Objects]) -> list[Objects]:
        """Run an equation as NumPy code in the middle of the scalar code."""
        from diffops.codegen.array import emit_array_function

        self._charge(BRIDGE_COST)
        self.bridges += 1
        rule = RULES[eqn.prim]
        args: list[str] = []
        deps: list[str] = []
        for v, atom in zip(values, eqn.inputs, strict=True):
            known = concrete(v, atom.aval)
            if known is not None:
                args.append(self.module.constant(known))
                continue
            whole = self._whole_input(v)
            if whole is not None:
                args.append(whole)
                continue
            name = self._name("p")
            dtype = atom.aval.dtype
            dtype_code = "np.float64" if dtype.kind == "f" else dtype_text(dtype)
            flat = v.reshape(-1).tolist()
            items = ", ".join(
                e.name if isinstance(e, Term) else literal(e) for e in flat
            )
            if v.ndim == 0:
                expr = f"np.array({items}, dtype={dtype_code})"
            else:
                expr = f"np.array([{items}], dtype={dtype_code})"
                if v.ndim != 1:
                    expr += f".reshape({v.shape!r})"
            term_deps = tuple(e.name for e in flat if isinstance(e, Term))
            self.stmts.append(Stmt((name,), expr, term_deps))
            args.append(name)
            deps.append(name)
        subs: dict[str, Any] = {}
        for key, value in eqn.params.items():
            if isinstance(value, Program):
                subs[key] = emit_array_function(
                    self.module, value, self.module.fresh("_body"), top=False
                )
            elif isinstance(value, tuple) and value and isinstance(value[0], Program):
                subs[key] = tuple(
                    emit_array_function(
                        self.module, v, self.module.fresh("_branch"), top=False
                    )
                    for v in value
                )
        ins = tuple(a.aval for a in eqn.inputs)
        outs = tuple(o.aval for o in eqn.outputs)
        expr = rule.array(Call(tuple(args), eqn.params, ins, outs, subs))
        results = tuple(self._name("r") for _ in outs)
        if rule.tuple_result and len(outs) == 1:
            expr = f"({expr})[0]"
        self.stmts.append(Stmt(results, expr, tuple(deps)))
        arrays = []
        for r, aval in zip(results, outs, strict=True):
            kind = kind_of(aval.dtype)
            terms = [Term(self._name(), kind, self) for _ in range(aval.size)]
            if terms:
                targets = tuple(t.name for t in terms)
                self.stmts.append(Stmt(targets, f"np.ravel({r}).tolist()", (r,)))
            arrays.append(self.objects(from_list(terms), aval))
        return arrays

    def _whole_input(self, v: Objects) -> str | None:
        """``"a3"`` if ``v`` holds exactly the elements of input 3, in order."""
        flat = v.reshape(-1).tolist()
        if not flat or not isinstance(flat[0], Term):
            return None
        origin = self.inputs.get(flat[0].name)
        if origin is None or origin[1] != 0 or self.input_sizes[origin[0]] != len(flat):
            return None
        for j, e in enumerate(flat):
            if not isinstance(e, Term) or self.inputs.get(e.name) != (origin[0], j):
                return None
        if self.input_shapes[origin[0]] != v.shape:
            return None
        return f"a{origin[0]}"
