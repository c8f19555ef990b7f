"""Backends registered the ``mici.autodiff`` way, as a module of operators.

``diffops.register_backend(name, AutodiffBackend(module, available, wrapper))`` takes
a module that defines one factory per operator (``module.grad_and_value(func)``, ...)
and an optional function wrapper applied to what each factory builds (for example
one that makes it return NumPy arrays). :class:`ModuleBackend` puts such a module
behind the NumPy boundary; sparse Jacobians and Hessians with a given pattern work
through its own products.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from diffops.backends.capabilities import SparseDerivatives
from diffops.backends.protocol import Backend
from diffops.errors import UnknownOperatorError
from diffops.operators import ALL_DIFF_OPS

Function = Callable[..., Any]


class ModuleBackend(Backend, SparseDerivatives):
    """A third-party backend given as mici's ``AutodiffBackend`` record.

    Args:
        name: The registry name.
        record: The record: ``module``, ``available`` and ``function_wrapper``.
    """

    def __init__(self, name: str, record: Any):
        self.name = name
        self.record = record
        self.framework = record.module.__name__
        self.extra = str(getattr(record.module, "EXTRA", name))

    @property
    def available(self) -> bool:
        """The record's ``available`` flag."""
        return bool(self.record.available)

    @property
    def supported_ops(self) -> tuple[str, ...]:
        """The operators the module defines, in table order."""
        module = self.record.module
        return tuple(op for op in ALL_DIFF_OPS if callable(getattr(module, op, None)))

    def check(self, op_name: str, func: Function, options: Mapping[str, Any]) -> None:
        """Check that the module defines the operator (its options, it checks)."""
        if op_name not in self.supported_ops:
            msg = (
                f"The {self.name!r} backend's module {self.record.module.__name__!r} "
                f"does not define {op_name}; it defines {self.supported_ops}."
            )
            raise UnknownOperatorError(msg)

    def operator(self, op_name: str, func: Function, **options: Any) -> Function:
        """The module's factory for the operator, wrapped by the record's wrapper."""
        derivative: Function = getattr(self.record.module, op_name)(func, **options)
        wrapper = self.record.function_wrapper
        return derivative if wrapper is None else wrapper(derivative)
