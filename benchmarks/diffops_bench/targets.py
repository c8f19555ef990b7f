"""Derived numbers: ratios per row, derived tables, and the performance targets.

Each target is named by what it measures (e.g. "jax overhead vs jax.jit"); its rows
say on which case and operator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .batched import BATCHED_CASES, batched_label, loop_label
from .config import BATCH_SIZE, HVP_DIM, SPARSE_DIM, Config
from .extra_args import ALIGNED, DEVICE, DIFFOPS, NOT_ALIGNED
from .ops import closure_name, short_name
from .records import Record, fmt_ratio, fmt_us
from .sparse import (
    COLOR_BOUND_OP,
    COLORS_OP,
    DENSE_ROW,
    FIRST_CALL_OP,
    SPARSE_CASES,
    SPARSE_ROW,
)


def _key(r: Record) -> tuple[str, str, int]:
    return r.section, r.op, r.dim


def ok(r: Record) -> bool:
    """Whether ``r`` was timed and not found wrong."""
    return r.median_us is not None and r.correct is not False


def _best(
    records: Sequence[Record], section: str, op: str, dim: int, **match: Any
) -> Record | None:
    found = [
        r
        for r in records
        if _key(r) == (section, op, dim)
        and ok(r)
        and all(getattr(r, k) == v for k, v in match.items())
    ]
    return min(found, key=lambda r: r.median_us or math.inf, default=None)


def _find(records: Sequence[Record], section: str, op: str, impl: str) -> list[Record]:
    return [r for r in records if (r.section, r.op, r.impl) == (section, op, impl)]


def _ratio(a: Record | None, b: Record | None) -> float | None:
    if a is None or b is None or not (ok(a) and ok(b)):
        return None
    return (a.median_us or math.nan) / (b.median_us or math.nan)


def _peers(r: Record) -> dict[str, Any]:
    """What a record is compared with: the same framework's hand-written calls.

    ``jax`` is compared with ``jax.jit`` compositions, ``jax_nojit`` with the same
    compositions run eagerly.
    """
    if r.backend == "jax_nojit" or r.family == "jax eager":
        return {"framework": "jax", "family": "jax eager", "kind": "framework"}
    if r.framework == "jax":
        return {"framework": "jax", "family": "jax.jit", "kind": "framework"}
    return {"framework": r.framework, "kind": "framework"}


def ratios(records: Sequence[Record]) -> dict[int, dict[str, float | None]]:
    """Per record (by index): ratio to the framework's best call and to NumPy."""
    out: dict[int, dict[str, float | None]] = {}
    for i, r in enumerate(records):
        if r.kind == "numpy" or r.section in ("import", "first_call"):
            continue
        fw = _best(records, r.section, r.op, r.dim, **_peers(r))
        numpy = _best(records, r.section, r.op, r.dim, kind="numpy")
        entry = {"vs_framework_best": _ratio(r, fw), "vs_numpy": _ratio(r, numpy)}
        if r.framework == "torch" and r.kind != "framework":
            tfunc = _best(records, r.section, r.op, r.dim, family="torch.func")
            entry["torch_func_best_over_diffops"] = _ratio(tfunc, r)
        out[i] = entry
    return out


def _closure_cost(records: Sequence[Record]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        if not r.op.endswith(" closure") or not ok(r):
            continue
        closure = r.op.split()[0]
        parent = [
            p
            for p in records
            if (p.section, p.impl, p.dim) == (r.section, r.impl, r.dim)
            and closure_name(p.op) == closure
        ]
        if parent:
            rows.append(
                {
                    "section": r.section,
                    "closure": closure,
                    "impl": r.impl,
                    "closure_us": r.median_us,
                    "operator_us": parent[0].median_us,
                    "ratio": _ratio(r, parent[0]),
                }
            )
    return rows


def _mtp_ratio(records: Sequence[Record]) -> list[dict[str, Any]]:
    rows = []
    for impl in sorted({r.impl for r in records if r.section == "logistic"}):
        mtp = _find(records, "logistic", "mtp_hessian_grad_and_value", impl)
        closure = _find(records, "logistic", "mtp closure", impl)
        hess = _find(records, "logistic", "hessian_grad_and_value", impl)
        if mtp and closure and hess and all(ok(r) for r in (*mtp, *closure, *hess)):
            total = (mtp[0].median_us or 0) + (closure[0].median_us or 0)
            rows.append(
                {
                    "impl": impl,
                    "dim": mtp[0].dim,
                    "mtp_plus_one_mtp_us": total,
                    "hessian_us": hess[0].median_us,
                    "ratio": total / (hess[0].median_us or math.inf),
                }
            )
    return rows


def _grad_over_value(records: Sequence[Record]) -> list[dict[str, Any]]:
    rows = []
    dims = sorted({r.dim for r in records if r.section == "rw_softplus"})
    impls = sorted({r.impl for r in records if r.section == "rw_softplus"})
    for dim in dims:
        for impl in impls:
            g = [
                r
                for r in _find(records, "rw_softplus", "grad_and_value", impl)
                if r.dim == dim
            ]
            v = [
                r for r in _find(records, "rw_softplus", "value", impl) if r.dim == dim
            ]
            if g and v and ok(g[0]) and ok(v[0]):
                rows.append(
                    {
                        "dim": dim,
                        "impl": impl,
                        "grad_us": g[0].median_us,
                        "value_us": v[0].median_us,
                        "ratio": _ratio(g[0], v[0]),
                    }
                )
        for fw, family in (
            ("jax", "jax.jit"),
            ("jax", "jax eager"),
            ("torch", None),
            ("autograd", None),
        ):
            match = {"framework": fw, "family": family} if family else {"framework": fw}
            g_best = _best(
                records, "rw_softplus", "grad_and_value", dim, kind="framework", **match
            )
            v_best = _best(
                records, "rw_softplus", "value", dim, kind="framework", **match
            )
            if g_best and v_best:
                rows.append(
                    {
                        "dim": dim,
                        "impl": f"{family or fw} best hand-written",
                        "grad_us": g_best.median_us,
                        "value_us": v_best.median_us,
                        "ratio": _ratio(g_best, v_best),
                    }
                )
    return rows


def _jacobian_modes(records: Sequence[Record]) -> list[dict[str, Any]]:
    rows = []
    for section in ("tall", "wide"):
        for backend in ("jax", "torch"):
            auto = _find(records, section, "jacobian_and_value", f"diffops[{backend}]")
            for mode in ("forward", "reverse"):
                forced = _find(
                    records,
                    section,
                    "jacobian_and_value",
                    f"diffops[{backend}, mode={mode}]",
                )
                if auto and forced and ok(auto[0]) and ok(forced[0]):
                    rows.append(
                        {
                            "section": section,
                            "backend": backend,
                            "mode": mode,
                            "auto_us": auto[0].median_us,
                            "forced_us": forced[0].median_us,
                            "forced_over_auto": _ratio(forced[0], auto[0]),
                        }
                    )
    return rows


def _like(r: Record) -> dict[str, Any]:
    """What a row is paired with in other problems of its case.

    diffops rows with the same row (same backend and options), NumPy rows with NumPy,
    hand-written rows with the best of the same framework (:func:`_peers`).
    """
    if r.kind == "diffops":
        return {"impl": r.impl}
    if r.kind == "numpy":
        return {"kind": "numpy"}
    return _peers(r)


def _hvp_products(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Per HVP row of the ``hvp`` case: its gradient, closure and Hessian partners."""
    rows = []
    for r in records:
        if (r.section, r.op) != ("hvp", "hvp_grad_and_value") or not ok(r):
            continue
        closure = _find(records, "hvp", "hvp closure", r.impl)
        grad = _best(records, "hvp", "grad_and_value", r.dim, **_like(r))
        hess = _best(records, "hvp", "hessian_grad_and_value", r.dim, **_like(r))
        if not closure or not ok(closure[0]):
            continue
        closure_us = closure[0].median_us or math.nan
        rows.append(
            {
                "impl": r.impl,
                "dim": r.dim,
                "grad_impl": grad.impl if grad else None,
                "grad_us": grad.median_us if grad else None,
                "hvp_us": r.median_us,
                "hvp_closure_us": closure_us,
                "hessian_impl": hess.impl if hess else None,
                "hessian_us": hess.median_us if hess else None,
                "closure_over_grad": closure_us / grad.median_us
                if grad and grad.median_us
                else None,
                "hvp_plus_one_over_hessian": ((r.median_us or math.nan) + closure_us)
                / hess.median_us
                if hess and hess.median_us
                else None,
            }
        )
    return rows


REVERSE_JACOBIAN = {
    "jax.jit": "jax.jit(jacrev, has_aux)",
    "torch.func": "torch.func.jacrev",
    "torch": "torch.func.jacrev",
    "autograd": "autograd.jacobian + f",
}
"""Hand-written reverse-mode Jacobian of each framework (family) on ``tall``."""


def _reverse_for(records: Sequence[Record], r: Record) -> Record | None:
    """The reverse-mode Jacobian row that a ``tall`` JVP row is compared with."""
    if r.kind == "diffops":
        name = (
            f"diffops[{r.backend}, mode=reverse]"
            if r.backend in ("jax", "torch")
            else f"diffops[{r.backend}]"
            if r.backend == "autograd"  # Autograd's Jacobian is reverse mode only
            else None
        )
    else:
        name = REVERSE_JACOBIAN.get(r.family or r.framework)
    found = _find(records, "tall", "jacobian_and_value", name) if name else []
    return found[0] if found and ok(found[0]) else None


def _jvp_vs_reverse(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Per JVP row of ``tall``: operator + one closure call against reverse mode."""
    rows = []
    for r in records:
        if (r.section, r.op) != ("tall", "jvp_and_value") or not ok(r):
            continue
        closure = _find(records, "tall", "jvp closure", r.impl)
        reverse = _reverse_for(records, r)
        if not closure or not ok(closure[0]) or reverse is None:
            continue
        closure_us = closure[0].median_us or math.nan
        reverse_us = reverse.median_us or math.nan
        rows.append(
            {
                "impl": r.impl,
                "jvp_us": r.median_us,
                "jvp_closure_us": closure_us,
                "reverse_impl": reverse.impl,
                "reverse_us": reverse_us,
                "jvp_plus_one_over_reverse": ((r.median_us or math.nan) + closure_us)
                / reverse_us,
                "closure_over_reverse": closure_us / reverse_us,
            }
        )
    return rows


CLOSED_OVER = " closed-over data"
"""Suffix of the ``args`` rows whose data is closed over."""


def _args(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Per ``args`` row passing its data: time against the closed-over row."""
    rows = []
    for r in records:
        if r.section != "args" or r.op != "grad_and_value" or r.kind == "numpy":
            continue
        if r.impl.endswith(CLOSED_OVER) or not ok(r):
            continue
        base = r.impl.split(" extra args")[0] + CLOSED_OVER
        closed = _find(records, "args", "grad_and_value", base)
        if closed and ok(closed[0]):
            rows.append(
                {
                    "impl": r.impl,
                    "args_us": r.median_us,
                    "closed_impl": base,
                    "closed_us": closed[0].median_us,
                    "ratio": _ratio(r, closed[0]),
                }
            )
    return rows


def _compilations(records: Sequence[Record]) -> list[dict[str, Any]]:
    return [
        {
            "impl": r.impl,
            "compilations": r.count,
            "correct": r.correct,
            "error": r.error,
        }
        for r in records
        if r.section == "args" and r.count is not None
    ]


def _first_call(records: Sequence[Record]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        if r.section == "first_call" and r.kind == "diffops":
            base = [
                b
                for b in records
                if b.section == "first_call"
                and b.op == r.op
                and b.kind == "framework"
                and b.note == r.note
            ]
            if base:
                rows.append(
                    {
                        "case": (r.note or "").split(":")[0],
                        "op": r.op,
                        "diffops_ms": (r.median_us or 0) / 1e3,
                        "jax_ms": (base[0].median_us or 0) / 1e3,
                        "ratio": _ratio(r, base[0]),
                    }
                )
    return rows


def _import(records: Sequence[Record]) -> list[dict[str, Any]]:
    imports = {r.impl: r for r in records if r.section == "import"}
    if len(imports) != 3:
        return []
    extra = imports["import diffops beyond numpy"].median_us or 0.0
    return [
        {
            "numpy_ms": (imports["import numpy"].median_us or 0) / 1e3,
            "diffops_ms": (imports["import diffops"].median_us or 0) / 1e3,
            "extra_ms": extra / 1e3,
            "extra_modules": imports["import diffops beyond numpy"].note,
        }
    ]


def _batched(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Per batched case and backend: the loop of single calls over the batched call."""
    rows = []
    for section, case in BATCHED_CASES.items():
        for backend in case.backends:
            loop = _find(records, section, case.op, loop_label(backend))
            batch = _find(records, section, case.op, batched_label(backend))
            if not loop or not batch or not (ok(loop[0]) and ok(batch[0])):
                continue
            lr, br = loop[0], batch[0]
            # jax against jax.jit(vmap(...)), jax_nojit against an eager vmap (none).
            hand = _best(records, section, br.op, br.dim, **_peers(br))
            rows.append(
                {
                    "section": section,
                    "op": br.op,
                    "dim": br.dim,
                    "batch": br.batch,
                    "backend": backend,
                    "loop_us": lr.median_us,
                    "loop_note": lr.note,
                    "batched_us": br.median_us,
                    "speedup": _ratio(lr, br),
                    "hand_impl": hand.impl if hand else None,
                    "hand_us": hand.median_us if hand else None,
                    "batched_over_hand": _ratio(br, hand),
                }
            )
    return rows


def _sparse(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Per sparse case: per-call and first-call times sparse / dense, and colors."""
    rows = []
    for section, case in SPARSE_CASES.items():
        sparse = _find(records, section, case.op, SPARSE_ROW)
        dense = _find(records, section, case.op, DENSE_ROW)
        first_s = _find(records, section, FIRST_CALL_OP, SPARSE_ROW)
        first_d = _find(records, section, FIRST_CALL_OP, DENSE_ROW)
        colors = _find(records, section, COLORS_OP, SPARSE_ROW)
        bound = [r for r in records if (r.section, r.op) == (section, COLOR_BOUND_OP)]
        if not (sparse or first_s or colors):
            continue
        s = sparse[0] if sparse and ok(sparse[0]) else None
        d = dense[0] if dense and ok(dense[0]) else None
        fs = first_s[0] if first_s and ok(first_s[0]) else None
        fd = first_d[0] if first_d and ok(first_d[0]) else None
        rows.append(
            {
                "section": section,
                "kind": case.kind,
                "dim": (sparse or first_s or colors)[0].dim,
                "sparse_us": s.median_us if s else None,
                "dense_us": d.median_us if d else None,
                "call_ratio": _ratio(s, d),
                "first_sparse_ms": fs.median_us / 1e3 if fs and fs.median_us else None,
                "first_dense_ms": fd.median_us / 1e3 if fd and fd.median_us else None,
                "first_ratio": _ratio(fs, fd),
                "colors": colors[0].count if colors else None,
                "colors_ok": colors[0].correct if colors else None,
                "coloring": colors[0].note if colors else None,
                "bound": bound[0].count if bound else None,
                "optimum": case.optimum,
            }
        )
    return rows


def derived(records: Sequence[Record]) -> dict[str, list[dict[str, Any]]]:
    """The derived tables (closure cost, MTP ratio, grad/value, Jacobian modes …)."""
    return {
        "closure_cost": _closure_cost(records),
        "mtp_ratio": _mtp_ratio(records),
        "grad_over_value": _grad_over_value(records),
        "jacobian_modes": _jacobian_modes(records),
        "hvp_products": _hvp_products(records),
        "jvp_vs_reverse": _jvp_vs_reverse(records),
        "args": _args(records),
        "args_compilations": _compilations(records),
        "first_call": _first_call(records),
        "import": _import(records),
        "batched": _batched(records),
        "sparse": _sparse(records),
    }


@dataclass
class Target:
    """One performance target and its measured value.

    Attributes:
        target: What the target measures, e.g. ``"jax overhead vs jax.jit"``.
        what: The case and the ratio measured, e.g. ``"banana grad: diffops jax /
            jax.jit best"``.
        measured: The measured value (``None``: not run, or not judged).
        threshold: The target value (``None``: reported only, no target).
        better: ``"<="``, ``">="`` or ``"=="`` (counts).
        detail: The times behind the ratio.
        count: The measured value is a count, not a ratio or time.
    """

    target: str
    what: str
    measured: float | None
    threshold: float | None
    better: str
    detail: str = ""
    count: bool = False

    @property
    def passed(self) -> bool | None:
        """``None`` when not measured or reported only."""
        if self.measured is None or self.threshold is None:
            return None
        if self.better == "<=":
            return self.measured <= self.threshold
        if self.better == "==":
            return self.measured == self.threshold
        return self.measured >= self.threshold


def _vs(a: Record | None, b: Record | None, name: bool = True) -> str:
    if a is None or b is None or a.median_us is None or b.median_us is None:
        return ""
    text = f"{fmt_us(a.median_us)} µs vs {fmt_us(b.median_us)} µs"
    return f"{text} ({b.impl})" if name else text


JAX_OVERHEAD = "jax overhead vs jax.jit"
SYMNUM_OVERHEAD = "symnum overhead vs SymNum's own function"
CLOSURE_COST = "jax closure call vs operator call"
GRAD_COST = "{} gradient cost vs value at d = 10⁶"
MTP_COST = "jax MTP vs Hessian"
AUTO_MODE = "jax auto Jacobian mode vs reverse"
IMPORT_TIME = "import time beyond numpy"
FIRST_CALL = "jax first call vs plain jax.jit"
TORCH_SPEEDUP = "torch speed-up vs torch.func"
HVP_COST = "hvp closure call / grad_and_value call"
HVP_VS_HESSIAN = "(hvp_grad_and_value + one hvp) / hessian_grad_and_value"
JVP_VS_REVERSE = "jvp on tall 3 → 300 / reverse-mode Jacobian"
ARGS_COST = "extra arguments vs closed-over data"
ARGS_COMPILES = "first call with a second data set compiles nothing new"
BATCHED_SPEEDUP = "batched speed-up vs a Python loop of single calls"
SPARSE_JACOBIAN = "sparse Jacobian / dense Jacobian call"
SPARSE_HESSIAN = "sparse Hessian / dense Hessian call"
SPARSE_FIRST_CALL = "first call (detection + coloring + compile) sparse / dense"
SPARSE_COLORS = "colors found vs the optimum"

BATCHED_SPEEDUP_TARGETS = {("batched_banana", "jax"): 20.0}
"""Batched cases and backends with a speed-up target; the others are reported only."""


def _batched_targets(
    derived: dict[str, list[dict[str, Any]]], cfg: Config
) -> list[Target]:
    """Batched speed-ups: the jax banana target, the other rows reported only."""
    out: list[Target] = []
    rows = {(b["section"], b["backend"]): b for b in derived["batched"]}
    cases = [(s, b, c) for s, c in BATCHED_CASES.items() for b in c.backends]
    for section, backend, case in cases:
        b = rows.get((section, backend))
        threshold = BATCHED_SPEEDUP_TARGETS.get((section, backend))
        what = (
            f"{section.removeprefix('batched_')} {short_name(case.op)}, "
            f"B={BATCH_SIZE}, {backend}: loop of single calls / one batched call"
        )
        if b is None:
            out.append(Target(BATCHED_SPEEDUP, what, None, threshold, ">="))
            continue
        detail = f"{fmt_us(b['loop_us'])} µs vs {fmt_us(b['batched_us'])} µs"
        if b["loop_note"]:
            detail += f" (loop {b['loop_note']})"
        if b["hand_impl"]:
            detail += (
                f"; batched / {b['hand_impl']} {fmt_ratio(b['batched_over_hand'])}"
            )
        measured = b["speedup"]
        if b["batch"] != BATCH_SIZE:
            detail = (
                f"speed-up {measured:.3g} ({detail}); not judged: B = {b['batch']} "
                f"in --quick, the target is at B = {BATCH_SIZE}"
            )
            measured = None
        out.append(Target(BATCHED_SPEEDUP, what, measured, threshold, ">=", detail))
    return out


def _sparse_targets(derived: dict[str, list[dict[str, Any]]]) -> list[Target]:
    """Sparse / dense per call and first call, and colors against the optimum."""
    out: list[Target] = []
    rows = {s["section"]: s for s in derived["sparse"]}
    for section, name in (
        ("sparse_jacobian", SPARSE_JACOBIAN),
        ("sparse_hessian", SPARSE_HESSIAN),
    ):
        s = rows.get(section)
        what = f"{section} d={SPARSE_DIM} jax: sparsity='detect' call / dense call"
        measured, detail = _judged(
            s, "call_ratio", "sparse_us", "dense_us", "µs", SPARSE_DIM
        )
        out.append(Target(name, what, measured, 0.05, "<=", detail))
    for section in SPARSE_CASES:
        s = rows.get(section)
        what = (
            f"{section} d={SPARSE_DIM} jax: build + first call, sparse / dense "
            f"(fresh functions, median)"
        )
        measured, detail = _judged(
            s, "first_ratio", "first_sparse_ms", "first_dense_ms", "ms", SPARSE_DIM
        )
        out.append(Target(SPARSE_FIRST_CALL, what, measured, 3.0, "<=", detail))
    for section, case in SPARSE_CASES.items():
        s = rows.get(section)
        what = f"{section} jax: colors (products per call) found"
        detail = ""
        if s and s["colors"] is not None:
            detail = (
                f"optimum {case.optimum}: {case.why}; bound measured on the result's "
                f"pattern {s['bound']}; {s['coloring']}"
            )
        measured = s["colors"] if s else None
        out.append(
            Target(SPARSE_COLORS, what, measured, case.optimum, "<=", detail, True)
        )
    return out


def _judged(
    row: dict[str, Any] | None,
    ratio: str,
    num: str,
    den: str,
    unit: str,
    dim: int,
) -> tuple[float | None, str]:
    """A ratio of the sparse table and its detail; not judged at another d."""
    if row is None or row[ratio] is None:
        return None, ""
    value = row[ratio]
    fmt = fmt_us if unit == "µs" else (lambda v: f"{v:.0f}")
    detail = f"{fmt(row[num])} {unit} vs {fmt(row[den])} {unit}"
    if row["dim"] != dim:
        detail = (
            f"ratio {value:.3g} ({detail}); not judged: d = {row['dim']} in --quick, "
            f"the target is at d = {dim}"
        )
        return None, detail
    return value, detail


def _product_targets(
    derived: dict[str, list[dict[str, Any]]], cfg: Config
) -> list[Target]:
    """The HVP, JVP and extra-argument targets (all on jax)."""
    out: list[Target] = []
    hvp = {h["impl"]: h for h in derived["hvp_products"]}.get("diffops[jax]")
    # Targets set at d = 2000; at another d (--quick) the ratios are only shown.
    at_target = hvp is not None and hvp["dim"] == HVP_DIM
    other_d = (
        ""
        if hvp is None or at_target
        else f"; not measured: d = {hvp['dim']} in --quick, the target is at "
        f"d = {HVP_DIM}"
    )
    for name, ratio, threshold, what in (
        (
            HVP_COST,
            "closure_over_grad",
            4.0,
            "one hvp closure call / diffops grad_and_value call",
        ),
        (
            HVP_VS_HESSIAN,
            "hvp_plus_one_over_hessian",
            0.05,
            "(hvp_grad_and_value + one hvp) / hessian_grad_and_value",
        ),
    ):
        value = hvp[ratio] if hvp else None
        if hvp is None or value is None:
            detail = ""
        elif ratio == "closure_over_grad":
            detail = (
                f"hvp {fmt_us(hvp['hvp_closure_us'])} µs vs grad "
                f"{fmt_us(hvp['grad_us'])} µs"
            )
        else:
            detail = (
                f"{fmt_us(hvp['hvp_us'])} + {fmt_us(hvp['hvp_closure_us'])} µs vs "
                f"{fmt_us(hvp['hessian_us'])} µs"
            )
        if value is not None and not at_target:
            detail = f"ratio {value:.3g} ({detail}){other_d}"
        measured = value if at_target else None
        what = f"hvp d={HVP_DIM} jax: {what}"
        out.append(Target(name, what, measured, threshold, "<=", detail))
    jvp = {j["impl"]: j for j in derived["jvp_vs_reverse"]}.get("diffops[jax]")
    detail = (
        f"{fmt_us(jvp['jvp_us'])} + {fmt_us(jvp['jvp_closure_us'])} µs vs "
        f"{fmt_us(jvp['reverse_us'])} µs; the closure call alone "
        f"{jvp['closure_over_reverse']:.3f}"
        if jvp
        else ""
    )
    what = "tall 3→300 jax: (jvp_and_value + one jvp) / jacobian_and_value(reverse)"
    measured = jvp["jvp_plus_one_over_reverse"] if jvp else None
    out.append(Target(JVP_VS_REVERSE, what, measured, 0.2, "<=", detail))
    args = {a["impl"]: a for a in derived["args"]}
    for data in (ALIGNED, NOT_ALIGNED, DEVICE):
        a = args.get(f"{DIFFOPS} extra args, {data}")
        detail = (
            f"{fmt_us(a['args_us'])} µs vs {fmt_us(a['closed_us'])} µs" if a else ""
        )
        what = (
            f"logistic d=100 n=1000 jax: f(beta, A, y) with {data} / "
            f"f closing over A, y"
        )
        measured = a["ratio"] if a else None
        out.append(Target(ARGS_COST, what, measured, 1.1, "<=", detail))
    counts = {c["impl"]: c for c in derived["args_compilations"]}
    c = counts.get(f"{DIFFOPS} extra args, {ALIGNED}")
    what = (
        "logistic d=100 jax: XLA compilations, first call with new data (same shapes)"
    )
    measured = c["compilations"] if c else None
    detail = "" if c is None else "result checked" if c["correct"] else "WRONG result"
    out.append(Target(ARGS_COMPILES, what, measured, 0, "==", detail, count=True))
    return out


def targets(
    records: Sequence[Record], derived: dict[str, list[dict[str, Any]]], cfg: Config
) -> list[Target]:
    """The performance targets, each with its measured value.

    Args:
        records: Every record of the run.
        derived: :func:`derived` of the records.
        cfg: The run's settings (to say why a target was not measured).

    Returns:
        The targets, in report order.
    """
    out: list[Target] = []

    def rec(section: str, op: str, impl: str) -> Record | None:
        found = _find(records, section, op, impl)
        return found[0] if found else None

    def best(section: str, op: str, **match: Any) -> Record | None:
        dims = [r.dim for r in records if (r.section, r.op) == (section, op)]
        return _best(records, section, op, dims[0], **match) if dims else None

    tiny = (
        ("banana", "grad_and_value"),
        ("banana", "hessian_grad_and_value"),
        ("torus", "jacobian_and_value"),
    )
    for name, backend, peers, threshold, label in (
        (JAX_OVERHEAD, "jax", {"family": "jax.jit"}, 1.15, "jax.jit best"),
        (SYMNUM_OVERHEAD, "symnum", {}, 1.10, "SymNum's generated function"),
    ):
        for section, op in tiny:
            d = rec(section, op, f"diffops[{backend}]")
            fw = best(section, op, framework=backend, kind="framework", **peers)
            what = f"{section} {short_name(op)}: diffops {backend} / {label}"
            out.append(Target(name, what, _ratio(d, fw), threshold, "<=", _vs(d, fw)))
    closures = {
        (c["section"], c["closure"]): c
        for c in derived["closure_cost"]
        if c["impl"] == "diffops[jax]"
    }
    for section, closure in (
        ("torus", "vjp"),
        ("torus", "mhp"),
        ("banana", "mtp"),
        ("logistic", "mtp"),
    ):
        c = closures.get((section, closure))
        detail = (
            f"{fmt_us(c['closure_us'])} µs vs {fmt_us(c['operator_us'])} µs"
            if c
            else ""
        )
        what = f"{section} jax: one {closure} closure call / the operator call"
        out.append(
            Target(CLOSURE_COST, what, c["ratio"] if c else None, 2.0, "<=", detail)
        )
    gv = {(g["dim"], g["impl"]): g for g in derived["grad_over_value"]}
    for backend, threshold in (("jax", 2.0), ("torch", 2.5)):
        g = gv.get((10**6, f"diffops[{backend}]"))
        if g:
            detail = f"{fmt_us(g['grad_us'])} µs vs {fmt_us(g['value_us'])} µs"
        elif max(cfg.large_dims) < 10**6:
            detail = "not measured (d = 10⁶ skipped in --quick)"
        else:
            detail = ""
        what = f"rw_softplus d=10⁶ {backend}: diffops grad_and_value / diffops value"
        measured = g["ratio"] if g else None
        name = GRAD_COST.format(backend)
        out.append(Target(name, what, measured, threshold, "<=", detail))
    mtp = {m["impl"]: m for m in derived["mtp_ratio"]}.get("diffops[jax]")
    detail = (
        f"{fmt_us(mtp['mtp_plus_one_mtp_us'])} µs vs {fmt_us(mtp['hessian_us'])} µs"
        if mtp
        else ""
    )
    what = "logistic d=100 jax: (mtp_hessian + one mtp) / hessian"
    out.append(Target(MTP_COST, what, mtp["ratio"] if mtp else None, 4.0, "<=", detail))
    out += _product_targets(derived, cfg)
    out += _batched_targets(derived, cfg)
    out += _sparse_targets(derived)
    modes = {
        (j["section"], j["backend"], j["mode"]): j for j in derived["jacobian_modes"]
    }
    j = modes.get(("tall", "jax", "reverse"))
    detail = f"{fmt_us(j['forced_us'])} µs vs {fmt_us(j['auto_us'])} µs" if j else ""
    what = "tall 3→300 jax: mode='reverse' time / auto-mode time"
    measured = j["forced_over_auto"] if j else None
    out.append(Target(AUTO_MODE, what, measured, 2.0, ">=", detail))
    imp = derived["import"][0] if derived["import"] else None
    detail = (
        f"self times of modules numpy does not load; totals {imp['diffops_ms']:.1f} "
        f"ms vs {imp['numpy_ms']:.1f} ms"
        if imp
        else ""
    )
    what = "import diffops beyond import numpy, ms"
    measured = imp["extra_ms"] if imp else None
    out.append(Target(IMPORT_TIME, what, measured, 30.0, "<=", detail))
    if not derived["first_call"]:
        what = "jax first call: diffops / plain jax.jit of composed transforms"
        out.append(Target(FIRST_CALL, what, None, 1.0, "<="))
    for fc in derived["first_call"]:
        what = (
            f"{fc['case']} {short_name(fc['op'])}: jax first call diffops / plain "
            f"jax.jit"
        )
        detail = f"{fc['diffops_ms']:.0f} ms vs {fc['jax_ms']:.0f} ms"
        out.append(Target(FIRST_CALL, what, fc["ratio"], 1.0, "<=", detail))
    for section, op in (
        ("banana", "grad_and_value"),
        ("banana", "hessian_grad_and_value"),
        ("banana", "mtp_hessian_grad_and_value"),
        ("torus", "jacobian_and_value"),
        ("torus", "mhp_jacobian_and_value"),
        ("torus", "vjp_and_value"),
    ):
        d = rec(section, op, "diffops[torch]")
        tfunc = best(section, op, family="torch.func")
        what = f"{section} {short_name(op)}: torch.func best / diffops torch"
        detail = f"{_vs(tfunc, d, False)}; {tfunc.impl}" if tfunc and d else ""
        out.append(Target(TORCH_SPEEDUP, what, _ratio(tfunc, d), 2.0, ">=", detail))
    return out
