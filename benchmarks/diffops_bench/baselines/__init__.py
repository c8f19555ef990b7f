"""What a careful user would write by hand: one module per framework, plus NumPy.

Each framework module has ``VARIANTS`` (operator → names of its hand-written
compositions) and ``build(model, op, variant)``; the framework is imported inside
``build``, so importing the harness imports none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from diffops.models import Model

from ..implementations import Impl, OpFn

# Aliased: inside the harness, ``jax`` etc. would read as the frameworks themselves.
from . import autograd as autograd_baselines
from . import jax as jax_baselines
from . import symnum as symnum_baselines
from . import torch as torch_baselines

BASELINES: dict[str, tuple[dict[str, tuple[str, ...]], Callable[..., OpFn]]] = {
    "jax": (jax_baselines.VARIANTS, jax_baselines.build),
    "torch": (torch_baselines.VARIANTS, torch_baselines.build),
    "autograd": (autograd_baselines.VARIANTS, autograd_baselines.build),
    "symnum": (symnum_baselines.VARIANTS, symnum_baselines.build),
}
"""Framework → (variants per operator, builder)."""


def family(variant: str) -> str | None:
    """Group a variant is compared in: ``jax.jit``, ``jax eager`` or ``torch.func``."""
    for prefix in ("torch.func", "jax.jit", "jax eager"):
        if variant.startswith(prefix):
            return prefix
    return None


def framework_impls(
    model: Model, op: str, framework: str, *, eager: bool = False
) -> list[Impl]:
    """Every hand-written variant of ``op`` in ``framework``.

    Args:
        model: The function.
        op: Operator name or ``"value"``.
        framework: ``"jax"``, ``"torch"``, ``"autograd"`` or ``"symnum"``.
        eager: For JAX, add the first composition without ``jax.jit`` (compared with
            ``diffops[jax_nojit]``).

    Returns:
        The implementations (none if the framework has no variant for ``op``).
    """
    variants, builder = BASELINES[framework]
    names = list(variants.get(op, ()))
    if eager and names:
        names.append(jax_baselines.eager_name(names[0]))
    context: Callable[[], contextlib.AbstractContextManager[Any]] = (
        jax_baselines.x64 if framework == "jax" else contextlib.nullcontext
    )
    impls = []
    for variant in names:

        def build(variant: str = variant) -> OpFn:
            return builder(model, op, variant)

        impls.append(
            Impl(
                variant,
                "framework",
                framework,
                build,
                family=family(variant),
                context=context,
            )
        )
    return impls
