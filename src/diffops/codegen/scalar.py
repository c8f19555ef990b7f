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
    namespace,
)

Objects = np.ndarray[Any, Any]


class TooLarge(Exception):
    """The scalar code would exceed its statement budget."""


_COMMUTATIVE = frozenset({"add", "add_any", "mul", "eq", "ne", "and", "or", "xor"})
_BRIDGE_COST = 40
"""Statements a bridge counts as in the budget (packing and a NumPy call)."""


def _kind(dtype: np.dtype[Any]) -> str:
    return "f" if dtype.kind == "f" else ("b" if dtype.kind == "b" else "i")


def _cast(value: Any, kind: str) -> Any:
    if kind == "f":
        return float(value)
    if kind == "b":
        return bool(value)
    return int(value)


def _aval(kind: str) -> Aval:
    dtype = {"f": np.float64, "i": np.int64, "b": np.bool_}[kind]
    return Aval((), np.dtype(dtype))


class Term:
    """A symbolic scalar: a local variable of the generated function.

    Its arithmetic operators emit statements, so that NumPy's own sums and products
    on object arrays (``np.sum``, ``@``, ``np.add.at``) write scalar code.
    """

    __slots__ = ("emitter", "kind", "name")

    def __init__(self, name: str, kind: str, emitter: ScalarEmitter):
        self.name = name
        self.kind = kind
        self.emitter = emitter

    def __repr__(self) -> str:
        return self.name

    def _op(self, prim: str, a: Any, b: Any) -> Any:
        return self.emitter.apply(prim, {}, [a, b], [_aval(self.kind)] * 2, self.kind)

    def __add__(self, other: Any) -> Any:
        return self._op("add", self, other)

    def __radd__(self, other: Any) -> Any:
        return self._op("add", other, self)

    def __sub__(self, other: Any) -> Any:
        return self._op("sub", self, other)

    def __rsub__(self, other: Any) -> Any:
        return self._op("sub", other, self)

    def __mul__(self, other: Any) -> Any:
        return self._op("mul", self, other)

    def __rmul__(self, other: Any) -> Any:
        return self._op("mul", other, self)

    def __neg__(self) -> Any:
        return self.emitter.apply("neg", {}, [self], [_aval(self.kind)], self.kind)


class Stmt:
    """``targets = expr``, reading the locals in ``deps``."""

    __slots__ = ("deps", "expr", "targets")

    def __init__(self, targets: tuple[str, ...], expr: str, deps: tuple[str, ...]):
        self.targets = targets
        self.expr = expr
        self.deps = deps


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
        self._inputs: dict[str, tuple[int, int]] = {}  # element name -> (input, index)
        self.bridges = 0
        self._negation_of: dict[str, Term] = {}
        self._input_sizes: list[int] = []
        self._input_shapes: list[tuple[int, ...]] = []

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
        simple = self._simplified(prim, params, elems, ins, out_kind)
        if simple is not _NONE:
            return simple
        if not any(isinstance(e, Term) for e in elems):
            return self._fold(prim, params, elems, ins, out_kind)
        rule = RULES[prim]
        assert rule.scalar is not None
        texts = [e.name if isinstance(e, Term) else literal(e) for e in elems]
        if prim in _COMMUTATIVE:
            texts.sort()
        call = Call(tuple(texts), params, tuple(ins), (_aval(out_kind),))
        expr = rule.scalar(call)
        for e in elems:
            if isinstance(e, Term) and expr == e.name:
                return e
        deps = tuple(e.name for e in elems if isinstance(e, Term))
        term = self.emit(expr, out_kind, deps)
        if prim == "neg" and isinstance(elems[0], Term):
            self._negation_of[term.name] = elems[0]
        return term

    def _fold(
        self, prim: str, params: Any, elems: list[Any], ins: list[Aval], kind: str
    ) -> Any:
        """A constant element, computed now (IEEE results where ``math`` raises)."""
        rule = RULES[prim]
        texts = [literal(e) for e in elems]
        if rule.scalar is not None:
            call = Call(tuple(texts), params, tuple(ins), (_aval(kind),))
            try:
                value = eval(rule.scalar(call), _scalar_namespace())
                return _cast(value, kind)
            except (ArithmeticError, ValueError):
                pass
        values = [np.asarray(e, dtype=a.dtype) for e, a in zip(elems, ins, strict=True)]
        (result,) = evaluate(prim, params, values, tuple(ins), (_aval(kind),))
        return _cast(np.asarray(result).item(), kind)

    def _simplified(
        self, prim: str, params: Any, elems: list[Any], ins: list[Aval], kind: str
    ) -> Any:
        """Algebraic shortcuts; ``_NONE`` when none applies."""
        const = [not isinstance(e, Term) for e in elems]
        if prim in ("add", "add_any"):
            a, b = elems
            if const[0] and a == 0 and not const[1]:
                return b
            if const[1] and b == 0 and not const[0]:
                return a
            if kind == "f" and not all(const):
                # a + (-b) = a - b, exactly.
                nb, na = self._unnegated(b), self._unnegated(a)
                if nb is not None:
                    return self.apply("sub", {}, [a, nb], ins, kind)
                if na is not None:
                    return self.apply("sub", {}, [b, na], ins, kind)
        elif prim == "sub":
            a, b = elems
            if const[1] and b == 0 and not const[0]:
                return a
            if const[0] and a == 0 and not const[1] and kind == "f":
                return self.apply("neg", {}, [b], ins[1:], kind)
            if a is b and kind == "i":
                return 0
            if kind == "f" and not all(const):
                # a - (-b) = a + b and (-a) - b = -(a + b), exactly.
                nb, na = self._unnegated(b), self._unnegated(a)
                if nb is not None:
                    return self.apply("add", {}, [a, nb], ins, kind)
                if na is not None and isinstance(a, Term):
                    inner = self.apply("add", {}, [na, b], ins, kind)
                    return self.apply("neg", {}, [inner], ins[:1], kind)
        elif prim == "mul":
            a, b = elems
            for x, y, cx in ((a, b, const[0]), (b, a, const[1])):
                if cx and x == 1 and isinstance(y, Term):
                    return y
                if cx and x == 0:
                    return _cast(0, kind)
                if cx and x == -1 and isinstance(y, Term):
                    return self.apply("neg", {}, [y], ins[:1], kind)
            if kind == "f":
                # c * (-y) = -(c * y) and (-c) * y = -(c * y), exactly: negations
                # move outwards, where they cancel and meet equal products.
                flipped = [self._unnegated(e) for e in elems]
                if sum(f is not None for f in flipped) == 1:
                    plain = [
                        f if f is not None else e
                        for f, e in zip(flipped, elems, strict=True)
                    ]
                    inner = self.apply("mul", {}, plain, ins, kind)
                    return self.apply("neg", {}, [inner], ins[:1], kind)
        elif prim == "div":
            a, b = elems
            if const[1] and b == 1 and isinstance(a, Term):
                return a
            if kind == "f" and not all(const):
                # (-a) / b = a / (-b) = -(a / b), exactly.
                flipped = [self._unnegated(e) for e in elems]
                if sum(f is not None for f in flipped) == 1:
                    plain = [
                        f if f is not None else e
                        for f, e in zip(flipped, elems, strict=True)
                    ]
                    inner = self.apply("div", {}, plain, ins, kind)
                    return self.apply("neg", {}, [inner], ins[:1], kind)
        elif prim == "neg":
            (a,) = elems
            if isinstance(a, Term) and a.name in self._negation_of:
                return self._negation_of[a.name]
        elif prim == "select_n":
            pred, *cases = elems
            if const[0]:
                return cases[int(pred)]
            if all(c is cases[0] for c in cases):
                return cases[0]
        elif prim == "integer_pow":
            return self._integer_pow(elems[0], int(params["y"]), ins[0], kind)
        elif prim == "square":
            return self.apply("mul", {}, [elems[0], elems[0]], ins * 2, kind)
        elif prim == "clamp":
            lo, x, hi = elems
            low = self.apply("max", {}, [x, lo], [ins[1], ins[0]], kind)
            return self.apply("min", {}, [low, hi], [ins[1], ins[2]], kind)
        elif prim in ("max", "min") and elems[0] is elems[1]:
            return elems[0]
        elif prim in ("and", "or") and kind == "b":
            pairs = ((elems[0], elems[1], const[0]), (elems[1], elems[0], const[1]))
            for x, y, cx in pairs:
                if cx:
                    return y if bool(x) == (prim == "and") else bool(x)
        return _NONE

    def _unnegated(self, e: Any) -> Any:
        """``y`` if ``e`` is ``-y`` (a negated local or a negative constant)."""
        if isinstance(e, Term):
            return self._negation_of.get(e.name)
        if isinstance(e, float) and e < 0:
            return -e
        return None

    def _mul(self, a: Any, b: Any, aval: Aval, kind: str) -> Any:
        return self.apply("mul", {}, [a, b], [aval, aval], kind)

    def _integer_pow(self, x: Any, y: int, aval: Aval, kind: str) -> Any:
        if y == 0:
            return _cast(1, kind)
        acc: Any = None
        base = x
        n = abs(y)
        while n:
            if n & 1:
                acc = base if acc is None else self._mul(acc, base, aval, kind)
            n >>= 1
            if n:
                base = self._mul(base, base, aval, kind)
        if y < 0:
            return self.apply("div", {}, [1.0, acc], [aval] * 2, kind)
        return acc

    # -- arrays -------------------------------------------------------------------

    def objects(self, value: Any, aval: Aval) -> Objects:
        """``value`` as an object array of ``aval``'s shape with plain elements."""
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        flat = array.reshape(-1).tolist()
        if len(flat) != aval.size:
            flat = np.broadcast_to(array, aval.shape).reshape(-1).tolist()
        kind = _kind(aval.dtype)
        out = np.empty(len(flat), dtype=object)
        out[:] = [e if isinstance(e, Term) else _cast(e, kind) for e in flat]
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
        kind = _kind(aval.dtype)
        columns = [np.broadcast_to(v, aval.shape).reshape(-1).tolist() for v in values]
        ins = [Aval((), a.aval.dtype) for a in eqn.inputs]
        flat = [
            self.apply(eqn.prim, eqn.params, list(elems), ins, kind)
            for elems in zip(*columns, strict=True)
        ]
        return self.objects(_from_list(flat), aval)

    def _structural(self, eqn: Any, values: list[Objects]) -> list[Objects]:
        rule = RULES[eqn.prim]
        args: list[Any] = []
        for i, (v, atom) in enumerate(zip(values, eqn.inputs, strict=True)):
            if i in rule.index_inputs:
                concrete = _concrete(v, atom.aval)
                if concrete is None:
                    return self._bridge(eqn, values)
                args.append(concrete)
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
        kind = _kind(aval.dtype)
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
        return [self.objects(_from_list(flat), aval)]

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
            self.objects(_stack(y, o.aval), o.aval)
            for y, o in zip(ys, eqn.outputs[ncarry:], strict=True)
        ]
        return carry + stacked

    # -- bridges to NumPy ---------------------------------------------------------

    def _bridge(self, eqn: Any, values: list[Objects]) -> list[Objects]:
        """Run an equation as NumPy code in the middle of the scalar code."""
        from diffops.codegen.array import emit_array_function

        self._charge(_BRIDGE_COST)
        self.bridges += 1
        rule = RULES[eqn.prim]
        args: list[str] = []
        deps: list[str] = []
        for v, atom in zip(values, eqn.inputs, strict=True):
            concrete = _concrete(v, atom.aval)
            if concrete is not None:
                args.append(self.module.constant(concrete))
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
            kind = _kind(aval.dtype)
            terms = [Term(self._name(), kind, self) for _ in range(aval.size)]
            if terms:
                targets = tuple(t.name for t in terms)
                self.stmts.append(Stmt(targets, f"np.ravel({r}).tolist()", (r,)))
            arrays.append(self.objects(_from_list(terms), aval))
        return arrays

    def _whole_input(self, v: Objects) -> str | None:
        """``"a3"`` if ``v`` holds exactly the elements of input 3, in order."""
        flat = v.reshape(-1).tolist()
        if not flat or not isinstance(flat[0], Term):
            return None
        origin = self._inputs.get(flat[0].name)
        if (
            origin is None
            or origin[1] != 0
            or self._input_sizes[origin[0]] != len(flat)
        ):
            return None
        for j, e in enumerate(flat):
            if not isinstance(e, Term) or self._inputs.get(e.name) != (origin[0], j):
                return None
        if self._input_shapes[origin[0]] != v.shape:
            return None
        return f"a{origin[0]}"


_NONE = object()
_SCALAR_NAMESPACE: dict[str, Any] = {}


def _scalar_namespace() -> dict[str, Any]:
    if not _SCALAR_NAMESPACE:
        _SCALAR_NAMESPACE.update(namespace())
    return _SCALAR_NAMESPACE


def _concrete(v: Objects, aval: Aval) -> np.ndarray[Any, Any] | None:
    """The values of ``v`` as a typed array if none is symbolic, else None."""
    flat = v.reshape(-1).tolist()
    if any(isinstance(e, Term) for e in flat):
        return None
    return np.array(flat, dtype=aval.dtype).reshape(aval.shape)


def _stack(items: list[Objects], aval: Aval) -> Objects:
    out = np.empty(aval.shape, dtype=object)
    for i, item in enumerate(items):
        out[i, ...] = item
    return out


def _from_list(items: list[Any]) -> Objects:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


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
    args = []
    for k, var in enumerate(program.inputs):
        kind = _kind(var.aval.dtype)
        terms = [Term(f"a{k}_{j}", kind, em) for j in range(var.aval.size)]
        if k >= packed_inputs:  # packed inputs have no array of their own
            for j, t in enumerate(terms):
                em._inputs[t.name] = (k, j)
        em._input_sizes.append(var.aval.size)
        em._input_shapes.append(var.aval.shape)
        args.append(_from_list(terms).reshape(var.aval.shape))
    outputs = em.run(program, args)

    used: set[str] = set()
    for out in outputs:
        used.update(e.name for e in out.reshape(-1).tolist() if isinstance(e, Term))
    kept: list[Stmt] = []
    for stmt in reversed(em.stmts):
        if any(t in used for t in stmt.targets):
            kept.append(stmt)
            used.update(stmt.deps)
    kept.reverse()

    lines = []
    unpacked = 0
    flat_names: list[str] = []
    conversions = []
    for k, var in enumerate(program.inputs[:packed_inputs]):
        names = [f"a{k}_{j}" for j in range(var.aval.size)]
        flat_names += names
        kind = _kind(var.aval.dtype)
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
    for stmt in kept:
        if len(stmt.targets) == 1 and not stmt.expr.startswith("np.ravel("):
            lines.append(f"{stmt.targets[0]} = {stmt.expr}")
        else:
            lines.append(f"{', '.join(stmt.targets)}, = {stmt.expr}")
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
    lines.append("return (" + "".join(r + ", " for r in results) + ")")

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


def _unpack(arg: str, names: list[str], aval: Aval) -> str:
    if aval.shape == ():
        convert = {"f": "float", "i": "int", "b": "bool"}[_kind(aval.dtype)]
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
    kind = _kind(aval.dtype)
    items = [e.name if isinstance(e, Term) else literal(_cast(e, kind)) for e in flat]
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
