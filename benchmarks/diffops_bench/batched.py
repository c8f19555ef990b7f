"""The ``batched`` cases: ``diffops.batched(d)(X)`` against a Python loop of ``d(x)``.

One call of the batched derivative function at ``B`` stacked points (``B = 1000``,
100 with ``--quick``) is timed side by side with one Python loop of ``B`` single calls
of the same derivative function whose outputs are stacked with ``np.stack`` (what a
user would write without ``batched``), in one interleaved set of rounds:

- ``batched_banana``: the 2-d banana gradient on every selected backend (one compiled
  ``vmap`` on ``jax``, ``torch.func.vmap`` on ``torch``, a loop elsewhere), with the
  hand-written ``jax.jit(vmap(value_and_grad))`` and
  ``torch.func.vmap(grad_and_value)``;
- ``batched_logistic``: the Hessian of the d = 100 logistic-regression log-posterior
  on ``jax``, with the hand-written ``jax.jit(vmap(jacfwd(value_and_grad)))``.

A loop that takes seconds (``jax_nojit``: ≈ 5 ms per eager call) is run on the first
:data:`LOOP_POINTS` points only and its times are scaled to the whole stack (noted in
its row). Every output is checked against a loop of the NumPy closed forms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import diffops
from diffops.models import MODELS, Model

from .baselines import jax as jax_baselines
from .baselines.closed_forms import closed_form_impl
from .cases import Problem, logistic_model
from .config import FRAMEWORK, Config
from .implementations import Impl, OpFn

BATCHED = "diffops.batched"
"""Row label prefix of the batched calls: ``diffops.batched[jax]``."""

LOOP = "loop of diffops"
"""Row label prefix of the loops of single calls: ``loop of diffops[jax]``."""

LOOP_POINTS = {"jax_nojit": 100}
"""Backends whose loop is timed on this many points and scaled to the whole stack."""

BANANA_BACKENDS = ("jax", "jax_nojit", "torch", "autograd", "symnum")
"""Backends of ``batched_banana`` (those selected and installed run)."""


@dataclass(frozen=True)
class BatchedCase:
    """One batched case.

    Attributes:
        model: Builds the function.
        op: The operator evaluated at every point.
        backends: The backends it runs on (of those selected).
        closed_form_points: Time the NumPy reference loop on this many points only,
            scaled to the whole stack (it is the reference, not what is measured);
            ``None``: on every point.
    """

    model: Callable[[], Model]
    op: str
    backends: tuple[str, ...]
    closed_form_points: int | None = None


BATCHED_CASES = {
    "batched_banana": BatchedCase(
        lambda: MODELS["banana"], "grad_and_value", BANANA_BACKENDS
    ),
    "batched_logistic": BatchedCase(
        lambda: logistic_model()[0],
        "hessian_grad_and_value",
        ("jax",),
        closed_form_points=100,
    ),
}
"""Case name → what it runs."""

JAX_VMAP = {
    "grad_and_value": "jax.jit(vmap(value_and_grad))",
    "hessian_grad_and_value": "jax.jit(vmap(jacfwd(value_and_grad, has_aux)))",
}
TORCH_VMAP = {"grad_and_value": "torch.func.vmap(grad_and_value)"}


def stack(outputs: Sequence[tuple[Any, ...]]) -> tuple[np.ndarray, ...]:
    """Per-point output tuples stacked along a new first axis, output by output."""
    return tuple(np.stack(o) for o in zip(*outputs, strict=True))


def points(model: Model, batch: int, seed: int) -> np.ndarray:
    """``batch`` float64 points of ``model``, stacked: shape ``(batch,) + S``."""
    rng = np.random.default_rng(seed)
    return np.asarray(model.sample(rng, (batch, *model.shape)), np.float64)


def _derivative(model: Model, op: str, backend: str) -> Any:
    func, opts = model.function(backend)
    return getattr(diffops, op)(func, backend=backend, **opts)


def diffops_batched_impl(model: Model, op: str, backend: str) -> Impl:
    """``diffops.batched(diffops.<op>(f, backend=...))``, called once per stack."""

    def build() -> OpFn:
        built: OpFn = diffops.batched(_derivative(model, op, backend))
        return built

    return Impl(
        batched_label(backend),
        "diffops",
        FRAMEWORK.get(backend, backend),
        build,
        backend=backend,
    )


def diffops_loop_impl(model: Model, op: str, backend: str, batch: int) -> Impl:
    """A Python loop of single calls of ``diffops.<op>(f, backend=...)``, stacked."""

    def build() -> OpFn:
        single = _derivative(model, op, backend)
        return lambda xs: stack([single(x) for x in xs])

    size = LOOP_POINTS.get(backend)
    return Impl(
        loop_label(backend),
        "diffops",
        FRAMEWORK.get(backend, backend),
        build,
        backend=backend,
        points=size if size is not None and size < batch else None,
    )


def closed_form_loop_impl(model: Model, op: str, points: int | None = None) -> Impl:
    """The NumPy closed forms at each point, stacked (the reference).

    Args:
        model: The function.
        op: Operator name.
        points: Time on this many points only, scaled to the whole stack (the
            reference itself is always computed at every point).

    Returns:
        The implementation.
    """
    single = closed_form_impl(model, op)

    def build() -> OpFn:
        call = single.build()
        return lambda xs: stack([call(x) for x in xs])

    return Impl(f"{single.name}, loop", "numpy", "numpy", build, points=points)


def jax_vmap_impl(model: Model, op: str) -> Impl:
    """Hand-written: one ``jax.jit`` of ``vmap`` of the composed transforms."""

    def build() -> OpFn:
        import jax

        f, _ = model.function("jax")

        def g_aux(x: Any) -> Any:
            v, g = jax.value_and_grad(f)(x)
            return g, (g, v)

        def hgv(x: Any) -> Any:
            h, (g, v) = jax.jacfwd(g_aux, has_aux=True)(x)
            return h, g, v

        def gv(x: Any) -> Any:
            v, g = jax.value_and_grad(f)(x)  # JAX's order is (value, grad)
            return g, v

        jf = jax.jit(jax.vmap(gv if op == "grad_and_value" else hgv))
        return lambda xs: tuple(np.asarray(o) for o in jf(xs))

    return Impl(
        JAX_VMAP[op],
        "framework",
        "jax",
        build,
        family="jax.jit",
        context=jax_baselines.x64,
    )


def torch_vmap_impl(model: Model, op: str) -> Impl:
    """Hand-written: ``torch.func.vmap`` of ``torch.func.grad_and_value``."""

    def build() -> OpFn:
        import torch

        f, _ = model.function("torch")
        vf = torch.func.vmap(torch.func.grad_and_value(f))

        def call(xs: np.ndarray) -> tuple[Any, ...]:
            g, v = vf(torch.from_numpy(xs))
            return g.detach().numpy(), v.detach().numpy()

        return call

    return Impl(TORCH_VMAP[op], "framework", "torch", build, family="torch.func")


def batched_problem(
    section: str,
    model: Model,
    op: str,
    backends: Sequence[str],
    cfg: Config,
    closed_form_points: int | None = None,
) -> Problem:
    """Batched call and loop of single calls per backend, hand-written, NumPy last.

    Args:
        section: Case name.
        model: The function.
        op: Operator name.
        backends: Backends to run, of those selected (others are not run).
        cfg: The run's settings (``batch_size``, backends).
        closed_form_points: Points the NumPy reference loop is timed on.

    Returns:
        The problem, ``x`` the stack of ``cfg.batch_size`` points.
    """
    batch = cfg.batch_size
    impls: list[Impl] = []
    for backend in cfg.backends:
        if backend not in backends:
            continue
        impls += [
            diffops_batched_impl(model, op, backend),
            diffops_loop_impl(model, op, backend, batch),
        ]
    if "jax" in cfg.backends and op in JAX_VMAP:
        impls.append(jax_vmap_impl(model, op))
    if "torch" in cfg.backends and "torch" in backends and op in TORCH_VMAP:
        impls.append(torch_vmap_impl(model, op))
    impls.append(closed_form_loop_impl(model, op, closed_form_points))
    xs = points(model, batch, seed=len(section) + model.shape[0])
    return Problem(section, op, model, xs, None, impls, batch=batch)


def batched_problems(cfg: Config) -> list[Problem]:
    """The selected ``batched`` cases (each one interleaved set of rounds)."""
    out = []
    for section, case in BATCHED_CASES.items():
        if section not in cfg.cases:
            continue
        if not set(case.backends) & set(cfg.backends):
            cfg.notes.append(f"{section}: needs one of {case.backends} (not selected)")
            continue
        model = case.model()
        out.append(
            batched_problem(
                section, model, case.op, case.backends, cfg, case.closed_form_points
            )
        )
        if case.backends != BANANA_BACKENDS:
            cfg.notes.append(
                f"{section}: {model.description}, at {cfg.batch_size} points, on "
                f"{', '.join(case.backends)} only"
            )
    return out


def loop_label(backend: str) -> str:
    """Row label of the loop of single calls on ``backend``."""
    return f"{LOOP}[{backend}]"


def batched_label(backend: str) -> str:
    """Row label of the batched call on ``backend``."""
    return f"{BATCHED}[{backend}]"
