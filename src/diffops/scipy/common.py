"""What the SciPy callbacks share: levels, cache size, counters, repr and pickling."""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any

OPERATORS = ("grad_and_value", "hvp_grad_and_value", "hessian_grad_and_value")
"""Operators in increasing order of what they return (each gives the lower too)."""
GRADIENT, HVP, HESSIAN = 0, 1, 2
"""Their levels."""
CACHED_POINTS = 2
"""Points kept: trust-region methods evaluate a trial point and, when they reject
it, return to the current one for more Hessian-vector products."""
HESSIAN_KINDS = ("matrix", "hvp")
"""What a constraint's ``hess`` returns: a matrix, or a ``LinearOperator``."""


def describe_sparsity(sparsity: Any) -> Any:
    """``sparsity`` for a repr: a name as it is, a pattern by its type and shape."""
    if isinstance(sparsity, str):
        return sparsity
    shape = getattr(sparsity, "shape", None)
    return f"<{type(sparsity).__name__} {shape}>"


class Callbacks:
    """The recipe that SciPy's callback objects keep: their repr and pickling.

    Attributes:
        args: The extra arguments of the function.
        prefetch: Whether a new point evaluates the derivative with the value.
        sparsity: The ``sparsity`` given (``None``: dense).
    """

    _builder = "callbacks"  # the public function that builds the subclass
    _methods: tuple[str, ...] = ()  # the optimiser's callbacks, counted in ``calls``

    def __init__(
        self,
        func: Callable[..., Any],
        backend: str,
        args: tuple[Any, ...],
        own: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        """Keep what builds the object again, and start the counters.

        Args:
            func: The user's function.
            backend: The backend's name.
            args: The extra arguments.
            own: The builder's keywords: ``prefetch``, ``sparsity`` and any of the
                subclass's own.
            options: The backend options.
        """
        self.args = tuple(args)
        self.prefetch = bool(own["prefetch"])
        self.sparsity = own["sparsity"]
        self._func = func
        self._backend = backend
        self._own = own
        self._options = options
        self._lock = _thread.allocate_lock()
        self.hvp_products = 0
        self.calls = dict.fromkeys(self._methods, 0)

    def __repr__(self) -> str:
        from diffops.errors import function_name

        shown = {
            key: describe_sparsity(value) if key == "sparsity" else value
            for key, value in {**self._own, **self._options}.items()
            if key != "prefetch" and not (key == "sparsity" and value is None)
        }
        opts = "".join(f", {k}={v!r}" for k, v in shown.items())
        return (
            f"{self._builder}({function_name(self._func)}, backend={self._backend!r}, "
            f"args=<{len(self.args)}>, prefetch={self.prefetch}{opts})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The recipe, without caches, counters or lock (e.g. for SciPy's
        # ``workers`` or a process pool of optimisations).
        recipe = (type(self), self._func, self._backend, self.args, self._own)
        return (_rebuild, (*recipe, self._options))


def _rebuild(
    cls: Callable[..., Any],
    func: Callable[..., Any],
    backend: str,
    args: tuple[Any, ...],
    own: dict[str, Any],
    options: dict[str, Any],
) -> Any:
    """A pickled callbacks object, built again from its recipe."""
    return cls(func, backend, args, **own, **options)
