"""First call on JAX (build + trace + compile + run): diffops vs plain ``jax.jit``."""

from __future__ import annotations

import time

import diffops
from diffops.models import Model

from .baselines import jax as jax_baselines
from .cases import sample
from .config import Config
from .records import Record, quartiles

FIRST_CALL = (
    ("banana", "grad_and_value", "jax.jit(value_and_grad)"),
    ("banana", "hessian_grad_and_value", "jax.jit(jacfwd(value_and_grad, has_aux))"),
    ("banana", "mtp_hessian_grad_and_value", "jax.jit(vjp(jacfwd(value_and_grad)))"),
    ("torus", "jacobian_and_value", "jax.jit(jacrev, has_aux)"),
    ("logistic", "hessian_grad_and_value", "jax.jit(jacfwd(value_and_grad, has_aux))"),
)
"""(case, operator, the ``jax.jit`` composition it is compared with)."""


def first_call(model: Model, op: str, variant: str, cfg: Config) -> list[Record]:
    """Time building and calling ``op`` once, on fresh function objects each time.

    A fresh function object per repetition means no cache can help. Round 0 is a
    warm-up (JAX's one-time initialisation) and is discarded; the order of diffops and
    plain ``jax.jit`` alternates between rounds.

    Args:
        model: The function.
        op: Operator name.
        variant: The hand-written JAX composition (a ``jax_baselines.VARIANTS`` name).
        cfg: The run's settings (``first_call_reps``).

    Returns:
        One record for diffops and one for plain ``jax.jit``.
    """
    x = sample(model, seed=3)
    times: dict[str, list[float]] = {"diffops": [], "jax": []}

    def diffops_first() -> float:
        func, _ = model.function("jax")  # a fresh function object: no cache applies
        start = time.perf_counter()
        getattr(diffops, op)(func, backend="jax")(x)
        return time.perf_counter() - start

    def jax_first() -> float:
        with jax_baselines.x64():
            start = time.perf_counter()
            jax_baselines.build(model, op, variant)(x)  # fresh function and jax.jit
            return time.perf_counter() - start

    for rep in range(cfg.first_call_reps + 1):
        order = ("diffops", "jax") if rep % 2 else ("jax", "diffops")
        for who in order:
            elapsed = diffops_first() if who == "diffops" else jax_first()
            if rep:
                times[who].append(elapsed * 1e6)
    records = []
    for who, impl, kind in (
        ("diffops", "diffops[jax]", "diffops"),
        ("jax", variant, "framework"),
    ):
        q1, median, q3 = quartiles(times[who])
        records.append(
            Record(
                "first_call",
                op,
                int(x.size),
                impl,
                kind,
                "jax",
                backend="jax" if who == "diffops" else None,
                median_us=median,
                q1_us=q1,
                q3_us=q3,
                min_us=min(times[who]),
                loops=1,
                repeats=len(times[who]),
                note=f"{model.name}: build + first call (trace + compile + run), "
                f"fresh function each time",
            )
        )
    return records
