"""Operator facts the harness needs, read from ``diffops.operators.OPERATORS``.

Besides diffops's operators the harness times one pseudo-operator, ``"value"``: the
function alone (``diffops.wrap_function`` against the frameworks' plain calls), as the
yardstick for the cost of a gradient.
"""

from __future__ import annotations

from diffops.operators import OPERATORS

VALUE = "value"
"""The pseudo-operator "the value alone"."""


def outputs(op: str) -> tuple[str, ...]:
    """Names of ``op``'s outputs in return order, e.g. ``("grad", "value")``."""
    return (VALUE,) if op == VALUE else OPERATORS[op].outputs


def closure_name(op: str) -> str | None:
    """Name of the product closure that ``op`` returns first.

    ``None`` if ``op`` returns none or is no operator (``"value"``, ``"import"``, a
    closure row's ``"mtp closure"``).
    """
    operator = OPERATORS.get(op)
    closure = None if operator is None else operator.closure
    return None if closure is None else closure.name


def closure_arg_shape(
    op: str, s: tuple[int, ...], f: tuple[int, ...]
) -> tuple[int, ...]:
    """Shape of the argument of ``op``'s closure, for input shape ``s``, value ``f``."""
    return OPERATORS[op].closure_arg_shape(s, f)


def short_name(op: str) -> str:
    """``op`` without the lower orders it carries along, for tables.

    ``"mtp_hessian_grad_and_value"`` → ``"mtp_hessian"``, ``"grad_and_value"`` →
    ``"grad"``, ``"vjp_and_value"`` → ``"vjp"``; other names are returned unchanged.
    """
    for suffix in ("_grad_and_value", "_and_value"):
        if op.endswith(suffix):
            return op.removesuffix(suffix)
    return op
