"""The benchmark problems: which functions, which operators, which implementations.

``banana`` and ``torus`` come from ``diffops.models.MODELS``; the other functions are
defined here with their NumPy closed forms, as ``diffops.models.Model`` records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from diffops import models
from diffops.models import MODELS, Model

from .baselines import framework_impls
from .baselines import jax as jax_baselines
from .baselines.closed_forms import (
    closed_form_impl,
    logistic_hvp_impl,
    logistic_mtp_impl,
)
from .config import FRAMEWORK, Config
from .implementations import Impl, diffops_impl
from .ops import VALUE, closure_arg_shape, closure_name

CASES: tuple[str, ...] = (
    "banana",
    "torus",
    "logistic",
    "hvp",
    "tall",
    "wide",
    "rw_softplus",
    "args",
    "batched_banana",
    "batched_logistic",
    "sparse_jacobian",
    "sparse_hessian",
    "first_call",
    "import",
)
"""Benchmark case names, in the order they run (``--cases``)."""

CASE_GROUPS = {
    "tiny": ("banana", "torus"),
    "medium": ("logistic",),
    "jacobian": ("tall", "wide"),
    "large": ("rw_softplus",),
    "closure": ("banana", "torus", "logistic"),
    "mtp": ("logistic",),
    "products": ("hvp",),
    "batched": ("batched_banana", "batched_logistic"),
    "sparse": ("sparse_jacobian", "sparse_hessian"),
}
"""Names for groups of cases (``--cases tiny``)."""

SCALAR_OPS = ("grad_and_value", "hessian_grad_and_value", "mtp_hessian_grad_and_value")
"""Operators timed on the scalar cases ``banana`` and ``logistic``."""

BANANA_OPS = (*SCALAR_OPS, "hvp_grad_and_value")
"""Operators timed on ``banana``: the scalar ones and the Hessian-vector product."""

ARRAY_OPS = (
    "jacobian_and_value",
    "mhp_jacobian_and_value",
    "vjp_and_value",
    "jvp_and_value",
)
"""Operators timed on the array case ``torus``."""

HVP_OPS = ("grad_and_value", "hvp_grad_and_value", "hessian_grad_and_value")
"""Operators timed on the ``hvp`` case, in one interleaved set of rounds."""

HVP_N_DATA = 200
"""Data points of the ``hvp`` case (its d is ``Config.hvp_dim``)."""

HESSIAN_BACKENDS = ("jax", "jax_nojit")
"""Backends whose Hessian is timed on the ``hvp`` case (d = 2000)."""

SYMNUM_SKIP = {
    "logistic": (
        "symnum skipped: SymNum's symbolic differentiation and code generation is "
        "too slow for a d = 100 model (it is meant for small models)"
    ),
    "hvp": (
        "symnum skipped: SymNum's symbolic differentiation and code generation is "
        "too slow for a d = 2000 model (it is meant for small models)"
    ),
    "tall": (
        "symnum skipped: SymNum's code generation scales badly with the number of "
        "expressions (3 → 300 took ~15 s per function, 300 → 3 did not finish in "
        "5 min during development)"
    ),
    "wide": (
        "symnum skipped: SymNum's code generation scales badly with the number of "
        "expressions (300 → 3 did not finish in 5 min during development)"
    ),
    "rw_softplus": (
        "symnum skipped: SymNum generates one expression per element, impractical "
        "for d ≥ 10³"
    ),
}

# ---------------------------------------------------------------------------------
# Functions benchmarked besides diffops.models.MODELS

LOGISTIC_DIM, LOGISTIC_N_DATA = 100, 200
DATA_SEED = models.LOGISTIC_SEED
"""Seed of the logistic data (``diffops.models.logistic_model``'s)."""


def logistic_data(
    dim: int, n_data: int, seed: int = DATA_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Design matrix ``A`` (n × d) and 0/1 labels ``y`` of the logistic case."""
    return models.logistic_data(dim, n_data, seed)


def logistic_model(
    dim: int = LOGISTIC_DIM, n_data: int = LOGISTIC_N_DATA, seed: int = DATA_SEED
) -> tuple[Model, np.ndarray]:
    """``diffops.models.logistic_model`` and its design matrix ``A``.

    The hand-written O(n d²) MTP and O(n d) HVP baselines use the design matrix.

    Args:
        dim: Number of coefficients ``d``.
        n_data: Number of observations ``n``.
        seed: Seed of the data (:func:`logistic_data`).

    Returns:
        The model and its design matrix ``A``.
    """
    design, _ = logistic_data(dim, n_data, seed)
    return models.logistic_model(dim, n_data, seed), design


def tall_model(n_out: int = 300) -> Model:
    """3 → n_out: ``sin(Cx) + (Cx)²/2``; forward mode wins."""
    c = np.random.default_rng(20261123).standard_normal((n_out, 3)) / np.sqrt(3)

    def formula(ns: SimpleNamespace) -> Callable[[Any], Any]:
        def tall(x: Any) -> Any:
            z = ns.const(c, x) @ x
            return ns.sin(z) + 0.5 * z**2

        return tall

    def value(x: np.ndarray) -> np.ndarray:
        z = c @ x
        return np.sin(z) + 0.5 * z**2

    def jacobian(x: np.ndarray) -> np.ndarray:
        z = c @ x
        return (np.cos(z) + z)[:, None] * c

    def vector_hessian(x: np.ndarray) -> np.ndarray:
        z = c @ x
        return (1 - np.sin(z))[:, None, None] * c[:, :, None] * c[:, None, :]

    return Model(
        "tall",
        f"3 → {n_out}: sin(Cx) + (Cx)²/2",
        (3,),
        False,
        formula,
        value,
        jacobian,
        vector_hessian,
    )


def wide_model(n_in: int = 300) -> Model:
    """n_in → 3: ``W sin(x) + (Wx)²/2``; reverse mode wins."""
    w = np.random.default_rng(20261124).standard_normal((3, n_in)) / np.sqrt(n_in)

    def formula(ns: SimpleNamespace) -> Callable[[Any], Any]:
        def wide(x: Any) -> Any:
            wc = ns.const(w, x)
            return wc @ ns.sin(x) + 0.5 * (wc @ x) ** 2

        return wide

    def value(x: np.ndarray) -> np.ndarray:
        return w @ np.sin(x) + 0.5 * (w @ x) ** 2

    def jacobian(x: np.ndarray) -> np.ndarray:
        return w * np.cos(x) + (w @ x)[:, None] * w

    def vector_hessian(x: np.ndarray) -> np.ndarray:
        diag = np.stack([np.diag(-wi * np.sin(x)) for wi in w])
        return diag + w[:, :, None] * w[:, None, :]

    return Model(
        "wide",
        f"{n_in} → 3: W sin(x) + (Wx)²/2",
        (n_in,),
        False,
        formula,
        value,
        jacobian,
        vector_hessian,
    )


def rw_softplus_model(dim: int) -> Model:
    """O(d) log-density: random-walk prior plus softplus terms."""

    def formula(ns: SimpleNamespace) -> Callable[[Any], Any]:
        def rw_softplus(x: Any) -> Any:
            dx = x[1:] - x[:-1]
            return -0.5 * ns.sum(dx**2) - ns.sum(ns.log1p(ns.exp(x)))

        return rw_softplus

    def value(x: np.ndarray) -> np.ndarray:
        dx = np.diff(x)
        return -0.5 * (dx @ dx) - np.sum(np.log1p(np.exp(x)))

    def grad(x: np.ndarray) -> np.ndarray:
        dx = np.diff(x)
        g = -1 / (1 + np.exp(-x))
        g[1:] -= dx
        g[:-1] += dx
        return g

    def hessian(x: np.ndarray) -> np.ndarray:
        s = 1 / (1 + np.exp(-x))
        h = np.diag(-s * (1 - s))
        lap = np.diag(np.r_[1.0, np.full(dim - 2, 2.0), 1.0]) if dim > 1 else 0
        off = np.eye(dim, k=1) + np.eye(dim, k=-1)
        return h - lap + off

    return Model(
        "rw_softplus",
        "−½Σ(x[i+1]−x[i])² − Σ log(1+eˣ), O(d)",
        (dim,),
        True,
        formula,
        value,
        grad,
        hessian,
        sample=lambda rng, shape: rng.standard_normal(shape),
    )


# ---------------------------------------------------------------------------------
# Problems: one case, one operator, every implementation


@dataclass
class Problem:
    """One operator of one case, with every implementation to time.

    Attributes:
        section: Case name.
        op: Operator name or ``"value"``.
        model: The function.
        x: Input point.
        closure_arg: Argument for the product closure (``None`` if there is none).
        impls: Implementations; the last is the NumPy closed form (the reference).
        group: Problems with the same group (adjacent in run order) are timed in one
            interleaved set of rounds, so that ratios between them (an HVP against a
            gradient) are measured under the same load; ``None``: on its own.
        reference: The closed forms' outputs at ``x`` (filled in when first needed).
        batch: For batched evaluation, the number of points stacked along the first
            axis of ``x`` (``None``: ``x`` is one point).
    """

    section: str
    op: str
    model: Model
    x: np.ndarray
    closure_arg: np.ndarray | None
    impls: list[Impl]
    group: str | None = None
    reference: tuple[Any, ...] | None = None
    batch: int | None = None

    @property
    def dim(self) -> int:
        """Input size of one point."""
        return int(self.x.size // (self.batch or 1))


def sample(model: Model, seed: int) -> np.ndarray:
    """A float64 input point for ``model``."""
    return np.asarray(
        model.sample(np.random.default_rng(seed), model.shape), np.float64
    )


def _closure_arg(op: str, x: np.ndarray, value: Any) -> np.ndarray | None:
    if closure_name(op) is None:
        return None
    shape = closure_arg_shape(op, x.shape, np.shape(value))
    return np.random.default_rng(7).standard_normal(shape)


def problem(
    section: str,
    model: Model,
    op: str,
    cfg: Config,
    *,
    modes: tuple[str, ...] = (),
    skip: dict[str, str] | None = None,
    diagnostics: bool = False,
    group: str | None = None,
) -> Problem:
    """Every implementation of ``op`` on ``model`` for the selected backends.

    Args:
        section: Case name.
        model: The function.
        op: Operator name or ``"value"``.
        cfg: The run's settings (backends; skipped backends are noted in it).
        modes: Jacobian modes to force on ``jax`` and ``torch`` besides auto.
        skip: Backends not to run, with the reason (added to the model's own).
        diagnostics: Add the diagnostic ``enable_x64``-per-call JAX row.
        group: Timed in one set of rounds with the other problems of this group.

    Returns:
        The problem: diffops per backend, each framework's own calls, NumPy last.
    """
    x = sample(model, seed=len(section) + model.shape[0])
    # The model's own reasons (diffops.models) first; the benchmark's add to them.
    skip = {
        **{b: f"{b} skipped: {why}" for b, why in model.skip.items()},
        **(skip or {}),
    }
    impls: list[Impl] = []
    frameworks: list[str] = []
    for backend in cfg.backends:
        if backend in skip:
            cfg.notes.append(f"{section}: {skip[backend]}")
            continue
        if op == VALUE and backend == "symnum":
            continue
        impls.append(diffops_impl(model, op, backend))
        if backend in ("jax", "torch") and op == "jacobian_and_value":
            impls.extend(diffops_impl(model, op, backend, mode=m) for m in modes)
        framework = FRAMEWORK.get(backend)
        if framework and framework not in frameworks:
            frameworks.append(framework)
    for framework in frameworks:
        eager = framework == "jax" and "jax_nojit" in cfg.backends
        impls.extend(framework_impls(model, op, framework, eager=eager))
    if diagnostics and "jax" in frameworks and op == "grad_and_value":
        impls.append(
            Impl(
                jax_baselines.DIAGNOSTIC_X64_PER_CALL,
                "diagnostic",
                "jax",
                lambda: jax_baselines.build_x64_per_call(model),
            )
        )
    impls.append(closed_form_impl(model, op))
    closure_arg = _closure_arg(op, x, model.value(x))
    return Problem(section, op, model, x, closure_arg, impls, group=group)


def hvp_problems(cfg: Config) -> list[Problem]:
    """The ``hvp`` case: gradient, HVP and Hessian of a logistic model, d = 2000.

    ``cfg.hvp_dim`` sets d (500 with ``--quick``). Timed in one interleaved set of
    rounds. The Hessian (O(n d²), 32 MB at d = 2000) is timed on ``jax`` and
    ``jax_nojit`` only; the HVP's NumPy closed form is the O(n d) product.
    """
    model, design = logistic_model(cfg.hvp_dim, HVP_N_DATA)
    skip = {"symnum": f"{SYMNUM_SKIP['hvp']}; {model.skip['symnum']}"}
    no_hessian = {
        b: f"{b} skipped for the d = {cfg.hvp_dim} Hessian: the targets are JAX's, "
        f"and the row-loop and Autograd Hessians take seconds per call"
        for b in cfg.backends
        if b not in HESSIAN_BACKENDS and b not in skip
    }
    out = []
    for op in HVP_OPS:
        extra = no_hessian if op == "hessian_grad_and_value" else {}
        hvp = problem("hvp", model, op, cfg, skip={**skip, **extra}, group="hvp")
        if op == "hvp_grad_and_value":
            hvp.impls[-1] = logistic_hvp_impl(model, design)
        out.append(hvp)
    return out


def problems(cfg: Config) -> list[Problem]:
    """Every problem of the selected cases, in run order."""
    out: list[Problem] = []
    cases = set(cfg.cases)
    if "banana" in cases:
        for op in BANANA_OPS:
            out.append(problem("banana", MODELS["banana"], op, cfg, diagnostics=True))
    if "torus" in cases:
        for op in ARRAY_OPS:
            out.append(problem("torus", MODELS["torus"], op, cfg))
    if "logistic" in cases:
        model, design = logistic_model()
        skip = {"symnum": f"{SYMNUM_SKIP['logistic']}; {model.skip['symnum']}"}
        for op in SCALAR_OPS:
            logistic = problem("logistic", model, op, cfg, skip=skip)
            if op == "mtp_hessian_grad_and_value":
                logistic.impls[-1] = logistic_mtp_impl(model, design)
            out.append(logistic)
    if "hvp" in cases:
        out += hvp_problems(cfg)
    for name, model in (("tall", tall_model()), ("wide", wide_model())):
        if name in cases:
            skip = {"symnum": SYMNUM_SKIP[name]}
            out.append(
                problem(
                    name,
                    model,
                    "jacobian_and_value",
                    cfg,
                    modes=("forward", "reverse"),
                    skip=skip,
                    group=name,
                )
            )
            if name == "tall":
                # Interleaved with the Jacobians: J @ v against the whole J.
                out.append(
                    problem(name, model, "jvp_and_value", cfg, skip=skip, group=name)
                )
    if "rw_softplus" in cases:
        for dim in cfg.large_dims:
            model = rw_softplus_model(dim)
            out.append(
                problem(
                    "rw_softplus",
                    model,
                    "grad_and_value",
                    cfg,
                    skip={"symnum": SYMNUM_SKIP["rw_softplus"]},
                )
            )
            out.append(problem("rw_softplus", model, VALUE, cfg))
    return out
