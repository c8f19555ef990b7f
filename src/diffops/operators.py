"""The six differential operators: their names, order and what each returns.

``DIFF_OPS`` is the single list of operators. ``OPERATORS`` maps each name to an
:class:`Operator` record that says whether the function must be scalar-valued and
which product closure (if any) the operator returns, so the NumPy boundary can check
shapes without a case per operator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

DIFF_OPS: tuple[str, ...] = (
    "vjp_and_value",
    "grad_and_value",
    "hessian_grad_and_value",
    "mtp_hessian_grad_and_value",
    "jacobian_and_value",
    "mhp_jacobian_and_value",
)
"""Names of the differential operators every backend module defines, in order."""


class Operator(NamedTuple):
    """What an operator returns.

    Attributes:
        name: Operator name, e.g. ``"grad_and_value"``.
        scalar_only: Whether the function must return a 0-d value.
        closure: Name of the product closure returned first (``"vjp"``, ``"mtp"``,
            ``"mhp"``) or ``None`` when every output is an array.
        n_outputs: Length of the returned tuple.
    """

    name: str
    scalar_only: bool
    closure: str | None
    n_outputs: int

    def closure_arg_shape(
        self, x_shape: tuple[int, ...], value_shape: tuple[int, ...]
    ) -> tuple[int, ...]:
        """Shape that the closure's argument must have.

        Args:
            x_shape: Shape ``S`` of the input.
            value_shape: Shape ``F`` of the function's value.

        Returns:
            ``F`` for ``vjp``, ``F + S`` for ``mhp`` and ``S + S`` for ``mtp``.
        """
        if self.closure == "vjp":
            return value_shape
        if self.closure == "mhp":
            return value_shape + x_shape
        return x_shape + x_shape


OPERATORS: dict[str, Operator] = {
    "vjp_and_value": Operator("vjp_and_value", False, "vjp", 2),
    "grad_and_value": Operator("grad_and_value", True, None, 2),
    "hessian_grad_and_value": Operator("hessian_grad_and_value", True, None, 3),
    "mtp_hessian_grad_and_value": Operator(
        "mtp_hessian_grad_and_value", True, "mtp", 4
    ),
    "jacobian_and_value": Operator("jacobian_and_value", False, None, 2),
    "mhp_jacobian_and_value": Operator("mhp_jacobian_and_value", False, "mhp", 3),
}


JACOBIAN_MODES: tuple[str, ...] = ("auto", "forward", "reverse")
"""Jacobian modes of the ``jax`` and ``torch`` backends: ``auto`` uses forward mode
when the output has more elements than the input."""

_MODE_OPTIONS = {"jacobian_and_value": ("mode",), "mhp_jacobian_and_value": ("mode",)}


def check_jacobian_mode(mode: str) -> None:
    """Raise ``ValueError`` unless ``mode`` is one of :data:`JACOBIAN_MODES`.

    Args:
        mode: Jacobian mode requested by the user.

    Raises:
        ValueError: For an unknown mode.
    """
    if mode not in JACOBIAN_MODES:
        msg = f"Jacobian mode {mode!r} is not one of {JACOBIAN_MODES}."
        raise ValueError(msg)


def check_mode_options(op_name: str, options: dict[str, object], backend: str) -> None:
    """Check the options of a backend whose only option is the Jacobian ``mode``.

    Args:
        op_name: Operator being built.
        options: Options given for it.
        backend: Backend name, for the message.

    Raises:
        TypeError: For an option the operator does not take.
        ValueError: For a Jacobian mode that is not one of :data:`JACOBIAN_MODES`.
    """
    allowed = _MODE_OPTIONS.get(op_name, ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = f"takes only {allowed}" if allowed else "takes no options"
        msg = f"{op_name} on the {backend} backend {takes}, not {unknown}."
        raise TypeError(msg)
    if "mode" in options:
        check_jacobian_mode(str(options["mode"]))


def mode_option_checker(backend: str) -> Callable[..., None]:
    """The build-time ``check_function`` of a backend whose only option is ``mode``.

    Args:
        backend: Backend name, for messages.

    Returns:
        ``check_function(func, op_name, **options)``, raising ``TypeError`` for an
        option the operator does not take and ``ValueError`` for an unknown mode.
    """

    def check_function(func: Callable[..., Any], op_name: str, **options: Any) -> None:
        """Check the operator's options when the derivative function is built.

        Args:
            func: The user's function (not called).
            op_name: Operator being built.
            **options: Options for the operator (``mode`` for Jacobians).
        """
        del func
        check_mode_options(op_name, options, backend)

    return check_function
