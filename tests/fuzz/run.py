"""Run every operator on every backend for one generated function and compare.

Four kinds of comparison (each counted in :class:`Tally`):

- ``cross``: every output of every operator (closures applied to seeded random
  arguments) agrees between every pair of backends, float64, ``rtol`` 1e-9;
- ``fd``: on one backend per operator (the first that ran, in ``FD_PREFERENCE``),
  every output agrees with fourth-order central differences of the output one order
  below (``tests/_fd.py``);
- ``sparse``: ``sparsity="detect"`` on ``jax`` and ``jax_nojit``, and the reference
  structure of :mod:`fuzz.reference` as a given pattern on the other backends, give
  the dense results (the CSR matrix's ``.toarray()``, and every other output);
- ``error``: a backend raised where the function is valid (every generated function
  is smooth at the point and well-defined on every backend that runs it).

With an extra argument, each derivative function is called twice, with two instances
of it (other values; for pytrees with a ``head`` leaf, other leaf shapes too), and
both calls are compared. A point is used only if every ``where``/``max``/``sort``
decision is the same throughout the finite-difference stencil, no decision sits on a
tie, and no ``prod`` has a factor near 0 (:mod:`fuzz.reference`).
"""

from __future__ import annotations

import time
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import diffops
from _fd import fd_comparisons
from diffops.operators import OPERATORS
from fuzz.emit import build, dialect_of
from fuzz.grammar import XMAX, FunctionSpec
from fuzz.reference import Evaluation, evaluate

BACKEND_ORDER = ("jax", "jax_nojit", "autograd", "torch", "symnum")
FD_PREFERENCE = ("jax", "autograd", "torch", "symnum", "jax_nojit")
DETECTING = ("jax",)  # jax_nojit detects with the same code, op by op: slow
NOJIT_EVERY = 3  # jax_nojit (op by op, slow) runs on one function in three
# SymNum generates code for each product of a given pattern again: only these two.
# Given patterns: not on JAX, which checks a given pattern against its own
# (conservative) detection and refuses one that lacks what detection found.
GIVEN = ("autograd", "torch", "symnum")
SYMNUM_MAX_NODES = 16  # SymPy's derivatives of larger trees take minutes
SYMNUM_SPARSE_OPS = ("jacobian_and_value", "hessian_grad_and_value")
SPARSE_OPS = {  # operator: index of its matrix output
    "jacobian_and_value": 0,
    "mhp_jacobian_and_value": 1,
    "hessian_grad_and_value": 0,
    "mtp_hessian_grad_and_value": 1,
}
JACOBIAN_OPS = ("jacobian_and_value", "mhp_jacobian_and_value")
MODE_BACKENDS = ("jax", "jax_nojit", "torch")
KINDS = frozenset({"cross", "fd", "sparse", "error", "harness"})
CROSS_RTOL = 1e-9
SPARSE_RTOL = 1e-9
FD_RTOL = 1e-5
FD_ATOL = 1e-6
MIN_MARGIN = 1e-6  # |p - q| of a where, gap of a max or sort, at the point
MIN_PROD_FACTOR = 1e-3
STENCIL = (-4e-3, -2e-3, -1e-3, 1e-3, 2e-3, 4e-3)
N_POINT_TRIES = 8


def rng_for(*key: object) -> np.random.Generator:
    words = [zlib.crc32(repr(k).encode()) for k in key]
    return np.random.default_rng([20261122, *words])


# ---------------------------------------------------------------------------------
# The case: a function at a point, with its extra arguments and closure arguments


@dataclass
class Case:
    """One generated function at one point, ready to run."""

    spec: FunctionSpec
    seed: int
    x: np.ndarray
    data: list[Any]  # one instance of the extra argument per call ([None]: none)
    evaluations: list[Evaluation]
    closure_args: dict[tuple[str, int], np.ndarray]
    x2: np.ndarray  # a second point for the sparse checks

    @property
    def calls(self) -> range:
        return range(len(self.data))

    def args(self, call: int) -> tuple[Any, ...]:
        return () if self.data[call] is None else (self.data[call],)

    def out_shape(self, call: int) -> tuple[int, ...]:
        return self.evaluations[call].out.val.shape

    def ops(self) -> tuple[str, ...]:
        scalar = self.spec.scalar
        return tuple(op for op, o in OPERATORS.items() if scalar or not o.scalar_only)


def data_instance(spec: FunctionSpec, rng: np.random.Generator, call: int) -> Any:
    """The extra argument for ``call`` (0 or 1): new values, new head rows."""
    data = spec.data
    if data is None:
        return None
    leaves: list[tuple[tuple[Any, ...], np.ndarray]] = []
    for i, shape in enumerate(data.float_shapes):
        leaves.append((data.path("float", i), rng.uniform(-XMAX, XMAX, shape)))
    for i, (shape, bound) in enumerate(data.index_leaves):
        leaves.append((data.path("index", i), rng.integers(0, bound, shape)))
    if data.head_rows is not None:
        rows = (data.head_rows[call], data.head_cols)
        leaves.append((data.path("head", 0), rng.uniform(-XMAX, XMAX, rows)))
    if data.kind == "array":
        return leaves[0][1]
    return assemble(data.kind, leaves)


def assemble(kind: str, leaves: list[tuple[tuple[Any, ...], np.ndarray]]) -> Any:
    """A dict, tuple or list (with nested containers) from ``(path, leaf)`` pairs."""
    if kind == "dict":
        out: dict[str, Any] = {}
        for path, leaf in leaves:
            if len(path) == 1:
                out[path[0]] = leaf
            else:
                out.setdefault(path[0], []).append(leaf)
        return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}
    items: list[Any] = []
    for path, leaf in leaves:
        if len(path) == 1:
            items.append(leaf)
        else:
            if len(items) == path[0]:
                items.append([])
            items[path[0]].append(leaf)
    return tuple(items) if kind == "tuple" else items


def decisions_stable(spec: FunctionSpec, x: np.ndarray, data: Any) -> bool:
    """No tie at ``x`` and the same decisions throughout the stencil."""
    here = evaluate(spec, x, data)
    if here.margins and min(here.margins) < MIN_MARGIN:
        return False
    if here.prod_factor < MIN_PROD_FACTOR:
        return False
    if not here.decisions:
        return True
    for k in range(x.size):
        unit = np.eye(x.size)[k].reshape(x.shape)
        for t in STENCIL:
            there = evaluate(spec, x + t * unit, data)
            for a, b in zip(here.decisions, there.decisions, strict=True):
                if not np.array_equal(a, b):
                    return False
    return True


def make_case(spec: FunctionSpec, seed: int) -> Case | None:
    """A seeded point (and extra arguments) where ``spec`` is smooth, or ``None``."""
    rng = rng_for("case", seed)
    n_calls = 1 if spec.data is None else 2
    for _ in range(N_POINT_TRIES):
        x = rng.uniform(-XMAX, XMAX, spec.in_shape)
        x2 = rng.uniform(-XMAX, XMAX, spec.in_shape)
        data = [data_instance(spec, rng, call) for call in range(n_calls)]
        if all(decisions_stable(spec, x, d) for d in data) and all(
            decisions_stable(spec, x2, d) for d in data
        ):
            break
    else:
        return None
    evaluations = [evaluate(spec, x, d) for d in data]
    closure_args = {}
    for op in OPERATORS:
        operator = OPERATORS[op]
        if operator.closure is None:
            continue
        for call in range(n_calls):
            f_shape = evaluations[call].out.val.shape
            shape = operator.closure_arg_shape(spec.in_shape, f_shape)
            closure_args[(op, call)] = rng.standard_normal(shape)
    return Case(spec, seed, x, data, evaluations, closure_args, x2)


# ---------------------------------------------------------------------------------
# Findings


@dataclass(frozen=True)
class Disagreement:
    """One thing that should have agreed and did not."""

    kind: str  # "cross", "fd", "sparse", "error", "harness"
    op: str
    label: str  # output name, e.g. "hessian" or "mtp(m)"
    call: int  # 0: first call; 1: second call (other extra arguments)
    backends: tuple[str, ...]  # the backends that gave the odd result
    against: tuple[str, ...] = ()  # the backends they were compared with
    detail: str = ""
    sparsity: str = ""  # "detect" or "given" for kind "sparse"

    def summary(self) -> str:
        where = f"{self.op} {self.label}" + (" (second call)" if self.call else "")
        versus = f" vs {', '.join(self.against)}" if self.against else ""
        return (
            f"[{self.kind}] {', '.join(self.backends)}{versus}: {where}: {self.detail}"
        )


@dataclass
class Tally:
    """Counts over a run: functions, comparisons by kind, disagreements."""

    functions: int = 0
    rejected: int = 0
    comparisons: Counter = field(default_factory=Counter)
    backend_functions: Counter = field(default_factory=Counter)
    features: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)  # by backend and phase

    def add(self, other: Tally) -> None:
        self.functions += other.functions
        self.rejected += other.rejected
        self.comparisons.update(other.comparisons)
        self.backend_functions.update(other.backend_functions)
        self.features.update(other.features)
        self.seconds.update(other.seconds)


@dataclass(frozen=True)
class Focus:
    """Restrict a run to one operator, some backends and one kind of check."""

    op: str
    backends: tuple[str, ...]
    kind: str

    @classmethod
    def on(cls, finding: Disagreement) -> Focus:
        named = finding.backends + finding.against
        backends = tuple(b for b in named if b in BACKEND_ORDER) or BACKEND_ORDER
        return cls(finding.op, backends, finding.kind)


# ---------------------------------------------------------------------------------
# Running


def backend_options(case: Case, backend: str, op: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if backend == "symnum":
        options["arg_shape"] = case.spec.in_shape
        if case.spec.data is not None:
            options["extra_shapes"] = [np.shape(case.data[0])]
    if op in JACOBIAN_OPS and backend in MODE_BACKENDS:
        options["mode"] = case.spec.jacobian_mode
    return options


def labelled(op: str, out: tuple[Any, ...], closure_arg: Any) -> dict[str, Any]:
    """The outputs by name; a closure is applied to ``closure_arg``."""
    names = OPERATORS[op].outputs
    if len(out) != len(names):
        raise AssertionError(f"{op} returned {len(out)} outputs, expected {names}")
    result = {}
    for name, value in zip(names, out, strict=True):
        if callable(value):
            result[f"{name}(m)"] = np.asarray(value(closure_arg))
        else:
            result[name] = value
    return result


def describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def max_error(a: np.ndarray, b: np.ndarray) -> str:
    if np.shape(a) != np.shape(b):
        return f"shapes {np.shape(a)} vs {np.shape(b)}"
    if np.asarray(a).dtype != np.float64 or np.asarray(b).dtype != np.float64:
        return f"dtypes {np.asarray(a).dtype} vs {np.asarray(b).dtype}"
    diff = np.abs(np.asarray(a) - np.asarray(b))
    return f"max abs difference {np.max(diff, initial=0.0):.3g}"


def agree(a: Any, b: Any, rtol: float) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != np.float64 or b.dtype != np.float64:
        return False
    scale = max(
        1.0,
        float(np.max(np.abs(a), initial=0.0)),
        float(np.max(np.abs(b), initial=0.0)),
    )
    return bool(np.allclose(a, b, rtol=rtol, atol=rtol * scale))


class Runner:
    """Runs the checks of one case on the given backends."""

    def __init__(
        self,
        case: Case,
        backends: tuple[str, ...],
        focus: Focus | None = None,
        kinds: frozenset[str] = KINDS,
    ):
        self.case = case
        self.focus = focus
        self.kinds = kinds
        self.backends = tuple(b for b in BACKEND_ORDER if b in backends)
        n_nodes = len(set(case.spec.root.walk()))
        if not case.spec.runs_on_symnum() or n_nodes > SYMNUM_MAX_NODES:
            self.backends = tuple(b for b in self.backends if b != "symnum")
        if focus is None and case.seed % NOJIT_EVERY:
            self.backends = tuple(b for b in self.backends if b != "jax_nojit")
        if focus is not None:
            self.backends = tuple(b for b in self.backends if b in focus.backends)
        self.functions = {
            dialect_of(b): build(case.spec, dialect_of(b)) for b in self.backends
        }
        self.tally = Tally(functions=1)
        self.found: list[Disagreement] = []
        # results[backend][op][call]: outputs by label
        self.results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.derivatives: dict[tuple[str, str], Any] = {}

    def wants(self, kind: str) -> bool:
        if kind not in self.kinds:
            return False
        return self.focus is None or self.focus.kind == kind

    def ops(self) -> tuple[str, ...]:
        ops = self.case.ops()
        if self.focus is not None:
            ops = tuple(op for op in ops if op == self.focus.op)
        return ops

    def run(self) -> list[Disagreement]:
        for backend in self.backends:
            self.tally.backend_functions[backend] += 1
        for feature in self.case.spec.used():
            self.tally.features[feature] += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for op in self.ops():
                self.timed("dense", self.dense, op)
                if self.wants("cross"):
                    self.cross(op)
                if self.wants("fd"):
                    self.timed("fd", self.finite_differences, op)
                if self.wants("sparse") and op in SPARSE_OPS:
                    self.timed("sparse", self.sparse, op)
            if self.wants("harness"):
                self.timed("harness", lambda _: self.harness(), "")
        return self.found

    def timed(self, phase: str, method, op: str) -> None:
        """Run one phase for ``op``; an exception in the harness itself is a finding."""
        start = time.perf_counter()
        try:
            method(op)
        except Exception as err:
            detail = f"the fuzz harness raised in its {phase} phase: {describe(err)}"
            self.found.append(Disagreement("harness", op, phase, 0, (), (), detail))
        self.tally.seconds[phase] += time.perf_counter() - start

    # -- dense results on every backend

    def dense(self, op: str) -> None:
        case = self.case
        for backend in self.backends:
            func = self.functions[dialect_of(backend)]
            start = time.perf_counter()
            try:
                derivative = getattr(diffops, op)(
                    func, backend=backend, **backend_options(case, backend, op)
                )
                self.derivatives[(backend, op)] = derivative
                per_call = []
                for call in case.calls:
                    out = derivative(case.x, *case.args(call))
                    per_call.append(
                        labelled(op, out, case.closure_args.get((op, call)))
                    )
                self.results.setdefault(backend, {})[op] = per_call
                self.tally.seconds[backend] += time.perf_counter() - start
            except Exception as err:  # a finding: every generated function is valid
                if self.wants("error"):
                    self.found.append(
                        Disagreement("error", op, "", 0, (backend,), (), describe(err))
                    )
                    self.tally.comparisons["error"] += 1

    def succeeded(self, op: str) -> list[str]:
        return [b for b in self.backends if op in self.results.get(b, {})]

    # -- cross-backend

    def cross(self, op: str) -> None:
        backends = self.succeeded(op)
        if len(backends) < 2:
            return
        for call in self.case.calls:
            first = self.results[backends[0]][op][call]
            for label in first:
                values = {b: self.results[b][op][call][label] for b in backends}
                self.tally.comparisons["cross"] += (
                    len(backends) * (len(backends) - 1) // 2
                )
                clusters: list[list[str]] = []
                for b in backends:
                    for cluster in clusters:
                        if agree(values[b], values[cluster[0]], CROSS_RTOL):
                            cluster.append(b)
                            break
                    else:
                        clusters.append([b])
                if len(clusters) == 1:
                    continue
                clusters.sort(key=len, reverse=True)
                majority = clusters[0]
                for cluster in clusters[1:]:
                    detail = max_error(values[cluster[0]], values[majority[0]])
                    self.found.append(
                        Disagreement(
                            "cross",
                            op,
                            label,
                            call,
                            tuple(cluster),
                            tuple(majority),
                            detail,
                        )
                    )

    # -- finite differences

    def finite_differences(self, op: str) -> None:
        case = self.case
        ran = self.succeeded(op)
        backend = next((b for b in FD_PREFERENCE if b in ran), None)
        if backend is None:
            return
        derivative = self.derivatives[(backend, op)]
        for call in case.calls:
            args = case.args(call)
            rng = rng_for("fd", case.seed, op, call)
            try:
                comparisons = fd_comparisons(
                    lambda y, args=args: derivative(y, *args), op, case.x, rng
                )
            except Exception as err:
                self.found.append(
                    Disagreement("error", op, "fd", call, (backend,), (), describe(err))
                )
                continue
            worst: dict[str, tuple[float, str]] = {}
            for label, computed, estimate in comparisons:
                self.tally.comparisons["fd"] += 1
                computed, estimate = np.asarray(computed), np.asarray(estimate)
                scale = max(1.0, float(np.max(np.abs(estimate), initial=0.0)))
                if computed.shape == estimate.shape and np.allclose(
                    computed, estimate, rtol=FD_RTOL, atol=FD_ATOL * scale
                ):
                    continue
                err = (
                    float(np.max(np.abs(computed - estimate)))
                    if computed.shape == estimate.shape
                    else np.inf
                )
                if label not in worst or err > worst[label][0]:
                    worst[label] = (err, max_error(computed, estimate))
            for label, (_, detail) in worst.items():
                self.found.append(
                    Disagreement(
                        "fd",
                        op,
                        label,
                        call,
                        (backend,),
                        ("finite differences",),
                        detail,
                    )
                )

    # -- sparse against dense

    def sparse(self, op: str) -> None:
        case = self.case
        same_shapes = len({case.out_shape(c) for c in case.calls}) == 1
        for backend in self.succeeded(op):
            if backend in DETECTING:
                self.sparse_one(op, backend, "detect", "detect")
            elif backend in GIVEN and same_shapes:
                if backend == "symnum" and op not in SYMNUM_SPARSE_OPS:
                    continue
                self.sparse_one(op, backend, reference_pattern(case, op), "given")

    def sparse_one(self, op: str, backend: str, sparsity: Any, how: str) -> None:
        case = self.case
        func = self.functions[dialect_of(backend)]
        index = SPARSE_OPS[op]
        name = OPERATORS[op].outputs[index]
        dense_derivative = self.derivatives[(backend, op)]
        try:
            derivative = getattr(diffops, op)(
                func,
                backend=backend,
                sparsity=sparsity,
                **backend_options(case, backend, op),
            )
            for call in case.calls:
                args = case.args(call)
                closure_arg = case.closure_args.get((op, call))
                for point, x in enumerate((case.x, case.x2)):
                    sparse_out = labelled(op, derivative(x, *args), closure_arg)
                    if point == 0:
                        dense_out = self.results[backend][op][call]
                    else:
                        dense_out = labelled(
                            op, dense_derivative(x, *args), closure_arg
                        )
                    self.compare_sparse(
                        op, backend, call, name, sparse_out, dense_out, how
                    )
        except Exception as err:
            self.found.append(
                Disagreement(
                    "sparse", op, name, 0, (backend,), ("dense",), describe(err), how
                )
            )

    def compare_sparse(
        self, op, backend, call, name, sparse_out, dense_out, how
    ) -> None:
        for label, dense_value in dense_out.items():
            self.tally.comparisons["sparse"] += 1
            value = sparse_out[label]
            if label == name:
                if not hasattr(value, "toarray"):
                    detail = (
                        f"expected a scipy.sparse array, got {type(value).__name__}"
                    )
                    self.found.append(
                        Disagreement(
                            "sparse",
                            op,
                            label,
                            call,
                            (backend,),
                            ("dense",),
                            detail,
                            how,
                        )
                    )
                    continue
                dense_value = (
                    np.reshape(dense_value, value.shape)
                    if np.size(dense_value) == np.prod(value.shape)
                    else dense_value
                )
                value = value.toarray()
            if not agree(value, dense_value, SPARSE_RTOL):
                detail = max_error(value, dense_value)
                self.found.append(
                    Disagreement(
                        "sparse", op, label, call, (backend,), ("dense",), detail, how
                    )
                )

    # -- the harness checks itself

    def harness(self) -> None:
        """The reference value agrees with the backends; its structure covers theirs."""
        case = self.case
        n = case.x.size
        for call in case.calls:
            expected = case.evaluations[call].out
            structures = {  # operator: (output, reference structure)
                "jacobian_and_value": ("jacobian", expected.G.reshape(-1, n))
            }
            if case.spec.scalar:
                structures["hessian_grad_and_value"] = (
                    "hessian",
                    expected.H.reshape(n, n),
                )
            for backend in self.backends:
                out = self.results.get(backend, {})
                if "vjp_and_value" in out:
                    self.tally.comparisons["harness"] += 1
                    value = out["vjp_and_value"][call]["value"]
                    if not agree(value, expected.val, 1e-8):
                        detail = f"reference value: {max_error(value, expected.val)}"
                        self.harness_finding(
                            "vjp_and_value", "value", call, backend, detail
                        )
                for op, (name, structure) in structures.items():
                    if op not in out:
                        continue
                    matrix = np.asarray(out[op][call][name])
                    if matrix.size != structure.size:
                        continue  # a wrong shape: the cross-backend check reports it
                    self.tally.comparisons["harness"] += 1
                    matrix = matrix.reshape(structure.shape)
                    outside = np.argwhere((matrix != 0) & ~structure).tolist()
                    if outside:
                        detail = f"reference structure misses {name} entries {outside}"
                        self.harness_finding(op, name, call, backend, detail)

    def harness_finding(self, op, label, call, backend, detail) -> None:
        finding = Disagreement(
            "harness", op, label, call, (backend,), ("reference",), detail
        )
        self.found.append(finding)


def reference_pattern(case: Case, op: str) -> np.ndarray:
    """The union over calls and both points of the reference structure of ``op``'s
    matrix (Jacobian ``(prod F, n)`` or Hessian ``(n, n)``)."""
    pattern = None
    for call in case.calls:
        for x in (case.x, case.x2):
            out = evaluate(case.spec, x, case.data[call]).out
            n = x.size
            part = out.G.reshape(-1, n) if op in JACOBIAN_OPS else out.H.reshape(n, n)
            pattern = part if pattern is None else pattern | part
    assert pattern is not None
    return pattern


def run_case(
    case: Case,
    backends: tuple[str, ...],
    focus: Focus | None = None,
    kinds: frozenset[str] = KINDS,
) -> tuple[list[Disagreement], Tally]:
    """Every check of ``kinds`` for ``case`` on ``backends``: what disagreed, and the
    counts. With ``focus``, only that operator, its backends and its kind of check."""
    runner = Runner(case, backends, focus, kinds)
    return runner.run(), runner.tally
