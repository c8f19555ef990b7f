"""Autograd backend: functions written with ``autograd.numpy`` (NumPy arrays in/out).

Its forward mode does not cover every primitive, so the operators
(:mod:`diffops.backends.compose`) come from ``make_vjp``: forward products are VJPs of
the pullback, Hessian rows VJPs of the gradient, looped over the seeds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.backends import compose
from diffops.backends.capabilities import (
    ExampleModels,
    SparseDerivatives,
)
from diffops.backends.protocol import Backend

Function = Callable[..., Any]


@functools.cache
def _getval() -> Function:
    """``autograd.tracer.getval``, imported once."""
    from autograd.tracer import getval

    return getval  # type: ignore[no-any-return]


def _unbox(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple([_unbox(v) for v in value])
    return _getval()(value)


class AutogradPrimitives(compose.Primitives):
    """``make_vjp``, products built from it, loops over seeds."""

    @functools.cached_property
    def xp(self) -> Any:
        """``autograd.numpy``."""
        import autograd.numpy as anp

        return anp

    def vjp(self, f: Function, x: Any) -> tuple[Any, Function, Any]:
        """``(out, pullback, aux)`` from one traced pass; ``aux`` unboxed."""
        from autograd import make_vjp

        aux: list[Any] = []

        def main(y: Any) -> Any:
            out, extra = f(y)
            aux.append(extra)
            return out

        pullback, out = make_vjp(main)(x)
        return out, pullback, _unbox(aux[0])

    def pushforward(self, f: Function, x: Any, out: Any, pullback: Function) -> Any:
        """``J t`` as the VJP of the linear map ``u -> uᵀ J`` (traced once)."""
        from autograd import make_vjp

        push, _ = make_vjp(pullback)(self.zeros(self.shape(out), out))
        return push

    def products(self, product: Function, seeds: Any) -> Any:
        """A loop over the seeds, stacked (Autograd has no vectorising map)."""
        return self.xp.stack([product(s) for s in seeds])

    def basis(self, shape: tuple[int, ...], like: Any) -> Any:
        """``eye(n)`` reshaped."""
        n = int(np.prod(shape, dtype=np.int64))
        return np.eye(n, dtype=self.dtype(like)).reshape((n, *shape))

    def zeros(self, shape: tuple[int, ...], like: Any) -> Any:
        """NumPy zeros."""
        return np.zeros(shape, dtype=self.dtype(like))

    def ones_like(self, a: Any) -> Any:
        """NumPy ones of ``a``'s shape and dtype."""
        return np.ones(self.shape(a), dtype=self.dtype(a))

    def shape(self, a: Any) -> tuple[int, ...]:
        """The shape of the (unboxed) value."""
        return tuple(np.shape(_unbox(a)))

    def is_array(self, a: Any) -> bool:
        """A NumPy array or scalar, or one of Autograd's boxes."""
        from autograd.tracer import Box

        return isinstance(a, np.ndarray | np.generic | Box)

    def dtype(self, a: Any) -> Any:
        """The value's dtype (float64 for Python numbers)."""
        return np.dtype(getattr(_unbox(a), "dtype", np.float64))

    def is_complex(self, a: Any) -> bool:
        """Whether the value holds complex numbers."""
        return self.dtype(a).kind == "c"  # type: ignore[no-any-return]


PRIMITIVES = AutogradPrimitives()


class AutogradBackend(Backend, SparseDerivatives, ExampleModels):
    """``autograd``: reverse mode on NumPy arrays; no conversions needed."""

    name = "autograd"
    framework = "autograd"
    extra = "autograd"
    title = "Autograd"
    write_with = (
        "with autograd.numpy (`import autograd.numpy as np`) and autograd.scipy "
        "instead of numpy and scipy."
    )
    numpy_markers = ("ArrayBox",)

    def primitives(self) -> compose.Primitives:
        """:class:`AutogradPrimitives`."""
        return PRIMITIVES


AUTOGRAD = AutogradBackend()
"""The ``autograd`` backend."""
