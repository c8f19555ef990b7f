"""Autograd backend: functions written with ``autograd.numpy``.

Autograd is imported on first use. It works on NumPy arrays directly, so no array
conversions are needed. It has reverse mode only (its forward mode does not cover
every primitive), so the operators (:mod:`diffops.backends.compose`) are built from
``make_vjp``: forward products are VJPs of the pullback (the double-VJP trick),
Hessian rows are VJPs of the gradient, products are looped over their seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from diffops.backends import compose
from diffops.backends.capabilities import (
    ExampleModels,
    SparseDerivatives,
    example_namespace,
)
from diffops.backends.protocol import Backend
from diffops.errors import causes, tracing_error

Function = Callable[..., Any]


def _unbox(value: Any) -> Any:
    from autograd.tracer import getval

    if isinstance(value, tuple):
        return tuple(_unbox(v) for v in value)
    return getval(value)


class AutogradPrimitives:
    """``make_vjp``, and products built from it, for the composed operators."""

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

    def linearize(
        self, f: Function, x: Any, *, symmetric: bool = False
    ) -> tuple[Any, Function, Any]:
        """The pullback for a symmetric Jacobian, else its transpose (double VJP)."""
        out, pullback, aux = self.vjp(f, x)
        if symmetric:
            return out, pullback, aux
        return out, self.pushforward(f, x, out, pullback), aux

    def pushforward(self, f: Function, x: Any, out: Any, pullback: Function) -> Any:
        """``J t`` as the VJP of the linear map ``u -> uᵀ J`` (traced once)."""
        from autograd import make_vjp

        zero = np.zeros(np.shape(_unbox(out)), dtype=self.dtype(out))
        push, _ = make_vjp(pullback)(zero)
        return push

    def products(self, product: Function, seeds: Any) -> Any:
        """A loop over the seeds, stacked (Autograd has no vectorising map)."""
        import autograd.numpy as anp

        return anp.stack([product(s) for s in seeds])

    def closure(self, product: Function) -> Any:
        """The product itself."""
        return product

    def basis(self, shape: tuple[int, ...], like: Any) -> Any:
        """``eye(n)`` reshaped."""
        n = int(np.prod(shape, dtype=np.int64))
        return np.eye(n, dtype=self.dtype(like)).reshape((n, *shape))

    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        """``anp.reshape``."""
        import autograd.numpy as anp

        return anp.reshape(a, shape)

    def transpose(self, a: Any) -> Any:
        """``anp.transpose``."""
        import autograd.numpy as anp

        return anp.transpose(a)

    def ones_like(self, a: Any) -> Any:
        """Ones of ``a``'s shape and dtype."""
        return np.ones(np.shape(_unbox(a)), dtype=self.dtype(a))

    def zeros(self, shape: tuple[int, ...], like: Any) -> Any:
        """NumPy zeros."""
        return np.zeros(shape, dtype=self.dtype(like))

    def shape(self, a: Any) -> tuple[int, ...]:
        """The shape of the (unboxed) value."""
        return tuple(np.shape(_unbox(a)))

    def is_array(self, a: Any) -> bool:
        """A NumPy array or scalar, or one of Autograd's boxes."""
        from autograd.tracer import Box

        return isinstance(a, np.ndarray | np.generic | Box)

    def is_complex(self, a: Any) -> bool:
        """``np.iscomplexobj`` of the value."""
        return bool(np.iscomplexobj(_unbox(a)))

    def dtype(self, a: Any) -> Any:
        """The value's dtype (float64 for Python numbers)."""
        return np.dtype(getattr(_unbox(a), "dtype", np.float64))


PRIMITIVES = AutogradPrimitives()


class AutogradBackend(Backend, SparseDerivatives, ExampleModels):
    """``autograd``: reverse mode on NumPy arrays; no conversions needed."""

    name = "autograd"
    framework = "autograd"
    extra = "autograd"

    def primitives(self) -> compose.Primitives:
        """:class:`AutogradPrimitives`."""
        return PRIMITIVES

    def explain_error(self, err: Exception, func: Function) -> Exception | None:
        """A :class:`~diffops.errors.TracingError` with a hint (NumPy on a box)."""
        traced = [
            e for e in causes(err) if isinstance(e, TypeError) and "ArrayBox" in str(e)
        ]
        if not traced:
            return None
        return tracing_error(
            "Autograd",
            func,
            traced[0],
            "with autograd.numpy (`import autograd.numpy as np`) and autograd.scipy "
            "instead of numpy and scipy.",
        )

    def namespace(self) -> SimpleNamespace:
        """The example models' operations in this framework."""
        import autograd.numpy as anp

        return example_namespace(
            anp, stack=anp.stack, const=lambda a, like: np.asarray(a, like.dtype)
        )


AUTOGRAD = AutogradBackend()
"""The ``autograd`` backend."""
