"""Backends registered the ``mici.autodiff`` way, as a module of operators.

``diffops.register_backend(name, AutodiffBackend(module, available, wrapper))`` takes
a module that defines one factory per operator (``module.grad_and_value(func)``, ...)
and an optional function wrapper applied to what each factory builds (for example
one that makes it return NumPy arrays). :class:`ModuleBackend` puts such a module
behind the NumPy boundary with the protocol's default hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from diffops.backends.protocol import Backend
from diffops.errors import UnknownOperatorError

if TYPE_CHECKING:
    from diffops.registry import AutodiffBackend

Function = Callable[..., Any]


def supported_ops(name: str) -> tuple[str, ...]:
    """The operators the module of a registered backend defines."""
    from diffops.registry import supported_ops as registered

    return registered(name)


class ModuleBackend(Backend):
    """A third-party backend given as mici's ``AutodiffBackend`` record."""

    def __init__(self, name: str, record: AutodiffBackend):
        self.name = name
        self.record = record
        self.framework = record.module.__name__
        self.extra = str(getattr(record.module, "EXTRA", name))

    @property
    def available(self) -> bool:
        """The record's ``available`` flag."""
        return bool(self.record.available)

    def check(self, op_name: str, func: Function, options: Mapping[str, Any]) -> None:
        """Check that the module defines the operator (its options, it checks)."""
        if not callable(getattr(self.record.module, op_name, None)):
            msg = (
                f"The {self.name!r} backend's module {self.record.module.__name__!r} "
                f"does not define {op_name}; it defines "
                f"{supported_ops(self.name)}."
            )
            raise UnknownOperatorError(msg)

    def operator(self, op_name: str, func: Function, **options: Any) -> Function:
        """The module's factory for the operator, wrapped by the record's wrapper."""
        derivative: Function = getattr(self.record.module, op_name)(func, **options)
        wrapper = self.record.function_wrapper
        return derivative if wrapper is None else wrapper(derivative)
