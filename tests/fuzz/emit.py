"""Source code of a generated function for each framework.

One tree, four dialects: ``jax`` (``jax.numpy``; also used by ``jax_nojit``), ``torch``,
``autograd`` (``autograd.numpy``) and ``symnum`` (``symnum.numpy``). The body is a
sequence of assignments, one per distinct node, with every constant defined inside the
function, so the source of several dialects can be pasted into one standalone snippet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fuzz.grammar import DataSpec, FunctionSpec, Node

DIALECTS = ("jax", "torch", "autograd", "symnum")
MODULE = {"jax": "jnp", "torch": "torch", "autograd": "anp", "symnum": "snp"}
IMPORTS = {
    "jax": "import jax\nimport jax.numpy as jnp",
    "torch": "import torch",
    "autograd": "import autograd.numpy as anp",
    "symnum": "import symnum.numpy as snp",
}


def dialect_of(backend: str) -> str:
    return "jax" if backend.startswith("jax") else backend


def literal(values: Any) -> str:
    """A list literal with every float written exactly."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, list | tuple):
        return "[" + ", ".join(literal(v) for v in values) + "]"
    if isinstance(values, float):
        return repr(float(values))
    return repr(values)


def data_path(data: DataSpec, kind: str, number: int) -> str:
    return "a" + "".join(f"[{key!r}]" for key in data.path(kind, number))


class Emitter:
    """Writes the statements of one function in one dialect."""

    def __init__(self, spec: FunctionSpec, dialect: str):
        self.spec = spec
        self.dialect = dialect
        self.m = MODULE[dialect]
        self.lines: list[str] = []
        self.names: dict[Node, str] = {}

    def name(self, node: Node) -> str:
        """The expression naming ``node``'s value (emitting it first if needed)."""
        if node.op == "x":
            return "x"
        if node.op == "data":
            return data_path(self._data, "float", node.params[0])
        if node.op == "const" and node.shape == ():
            value = float(node.params[0][0])
            return repr(value) if value >= 0 else f"({value!r})"
        if node not in self.names:
            args = [self.name(arg) for arg in node.args]
            target = f"t{len(self.names)}"
            self.names[node] = target
            self.lines.append(f"{target} = {self.expression(node, args, target)}")
        return self.names[node]

    @property
    def _data(self) -> DataSpec:
        assert self.spec.data is not None
        return self.spec.data

    def array(self, values: Any, shape: tuple[int, ...], integer: bool = False) -> str:
        flat = [int(v) for v in values] if integer else [float(v) for v in values]
        text = literal(np.reshape(flat, shape).tolist())
        if self.dialect == "torch" and not integer:
            return f"torch.tensor({text}, dtype=torch.float64)"
        return f"np.array({text})"

    def stack(self, args: list[str]) -> str:
        m = self.m
        if self.dialect == "symnum":
            return f"snp.array([{', '.join(args)}])"
        return f"{m}.stack([{', '.join(args)}])"

    def expression(self, node: Node, args: list[str], target: str) -> str:
        m, d, p = self.m, self.dialect, node.params
        op = node.op
        if op == "const":
            return self.array(p[0], node.shape)
        if op == "unary":
            a = args[0]
            return {
                "neg": f"-{a}",
                "logistic": f"1 / (1 + {m}.exp(-{a}))",
                "log1p_sq": f"{m}.log1p({a} ** 2)",
                "sqrt1p_sq": f"{m}.sqrt(1 + {a} ** 2)",
            }.get(p[0], f"{m}.{p[0]}({a})")
        if op == "power":
            return f"{args[0]} ** {p[0]}"
        if op in ("add", "sub", "mul"):
            symbol = {"add": "+", "sub": "-", "mul": "*"}[op]
            return f"{args[0]} {symbol} {args[1]}"
        if op == "safe_div":
            return f"{args[0]} / (1 + {args[1]} ** 2)"
        if op == "where":
            cp, cq, b, c = args
            if p[0] == "cond" and d == "jax":
                return f"jax.lax.cond({cp} > {cq}, lambda: {b}, lambda: {c})"
            return f"{m}.where({cp} > {cq}, {b}, {c})"
        if op in ("sum", "prod", "max"):
            axis = p[0]
            name = {"torch": {"max": "amax"}}.get(d, {}).get(op, op)
            if axis is None:
                return f"{m}.{name}({args[0]})"
            keyword = "dim" if d == "torch" else "axis"
            return f"{m}.{name}({args[0]}, {keyword}={axis})"
        if op == "element":
            return f"{args[0]}[{', '.join(map(str, p[0]))}]"
        if op == "column":
            return f"{args[0]}[:, {p[0]}]"
        if op == "slice":
            return self.slice(args[0], node)
        if op == "take":
            return self.take(args[0], node)
        if op == "data_take":
            return f"{args[0]}[{data_path(self._data, 'index', p[0])}]"
        if op == "concat":
            if d == "jax" and p[-1] == "at_set":
                return self.at_set(args, [a.shape[0] for a in node.args], node.shape)
            name = "cat" if d == "torch" else "concatenate"
            return f"{m}.{name}([{', '.join(args)}])"
        if op == "stack":
            if d == "jax" and p[-1] == "at_set":
                return self.at_set(args, None, node.shape)
            return self.stack(args)
        if op == "matmul":
            return f"{args[0]} @ {args[1]}"
        if op == "transpose":
            return f"{args[0]}.T"
        if op == "reshape":
            return f"{args[0]}.reshape({node.shape})"
        if op == "recurrence":
            return self.recurrence(args[0], node, target)
        if op == "sort":
            return (
                f"torch.sort({args[0]}).values"
                if d == "torch"
                else f"{m}.sort({args[0]})"
            )
        if op == "head":
            product = f"{data_path(self._data, 'head', 0)} @ {args[0]}.reshape(-1)"
            return f"{m}.sum({product})" if p[0] else product
        raise ValueError(f"no {d} spelling for node {op!r}")

    def slice(self, a: str, node: Node) -> str:
        axis, start, stop, step = node.params
        if self.dialect == "torch" and step < 0:  # torch has no negative steps
            taken = list(range(*slice(start, stop, step).indices(start + 1)))
            lo, hi = min(taken), max(taken) + 1
            inner = f"{lo}:{hi}:{-step}" if -step != 1 else f"{lo}:{hi}"
            index = f":, {inner}" if axis == 1 else inner
            return f"torch.flip({a}[{index}], dims=({axis},))"
        text = ":".join("" if v is None else str(v) for v in (start, stop))
        if step != 1:
            text += f":{step}"
        return f"{a}[{':, ' if axis == 1 else ''}{text}]"

    def take(self, a: str, node: Node) -> str:
        idx, idx_shape, variant = node.params
        if self.dialect == "symnum":  # no integer-array indexing: list the elements
            elements = np.reshape([f"{a}[{i}]" for i in idx], idx_shape).tolist()
            return f"snp.array({_list_of_names(elements)})"
        index = self.array(idx, idx_shape, integer=True)
        if self.dialect == "jax" and variant == "jnp_take":
            return f"jnp.take({a}, {index})"
        if self.dialect == "jax" and variant == "at_get_fill":
            return f'{a}.at[{index}].get(mode="fill", fill_value=0.0)'
        if self.dialect == "jax" and variant == "sort_key_val":
            keys = [0.0] * len(idx)
            for position, i in enumerate(idx):
                keys[i] = float(position)
            out = f"jax.lax.sort_key_val({self.array(keys, (len(idx),))}, {a})[1]"
            # The permuted vector, in the index array's shape (e.g. a column).
            return out if len(idx_shape) == 1 else f"{out}.reshape({idx_shape})"
        return f"{a}[{index}]"

    def at_set(self, args: list[str], lengths: list[int] | None, shape) -> str:
        out = f"jnp.zeros({shape})"
        start = 0
        for i, part in enumerate(args):
            if lengths is None:
                out += f".at[{i}].set({part})"
            else:
                out += f".at[{start}:{start + lengths[i]}].set({part})"
                start += lengths[i]
        return out

    def recurrence(self, a: str, node: Node, target: str) -> str:
        kind, last, variant = node.params
        n = node.args[0].shape[0]
        step = "c + ai" if kind == "sum" else "c * ai + ai"
        if self.dialect == "jax" and variant == "scan":
            zero = f"jnp.zeros((), {a}.dtype)"
            scan = f"jax.lax.scan(lambda c, ai: ({step}, {step}), {zero}, {a})"
            return f"{scan}[{0 if last else 1}]"
        if self.dialect == "jax" and variant == "fori_loop":
            body = step.replace("ai", f"{a}[i]")
            zero = f"jnp.zeros((), {a}.dtype)"
            return f"jax.lax.fori_loop(0, {n}, lambda i, c: {body}, {zero})"
        if self.dialect == "jax" and variant == "cumsum":
            return f"jnp.cumsum({a})"
        partial = [f"{target}_0"]
        self.lines.append(f"{target}_0 = {a}[0]")
        for i in range(1, n):
            term = step.replace("c", f"{target}_{i - 1}").replace("ai", f"{a}[{i}]")
            self.lines.append(f"{target}_{i} = {term}")
            partial.append(f"{target}_{i}")
        return partial[-1] if last else self.stack(partial)


def _list_of_names(nested: Any) -> str:
    if isinstance(nested, list):
        return "[" + ", ".join(_list_of_names(v) for v in nested) + "]"
    return str(nested)


def source(spec: FunctionSpec, dialect: str, name: str = "f") -> str:
    """The ``def`` of ``spec`` in ``dialect`` (imports not included)."""
    emitter = Emitter(spec, dialect)
    result = emitter.name(spec.root)
    signature = "x" if spec.data is None else "x, a"
    body = [*emitter.lines, f"return {result}"]
    return f"def {name}({signature}):\n" + "".join(f"    {line}\n" for line in body)


def build(spec: FunctionSpec, dialect: str, name: str = "f"):
    """The function of ``spec`` in ``dialect``, compiled from its source."""
    namespace: dict[str, Any] = {"np": np}
    exec(IMPORTS[dialect], namespace)
    code = source(spec, dialect, name)
    exec(compile(code, f"<fuzz {dialect} {name}>", "exec"), namespace)
    func = namespace[name]
    func.__fuzz_source__ = code
    return func
