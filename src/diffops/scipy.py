"""Objectives for ``scipy.optimize.minimize``: :func:`scipy_objective`.

SciPy asks for the value, the gradient and the Hessian (or Hessian-vector products)
through separate callbacks, usually at the same point one after the other. Written
naively, each callback evaluates the model again. :class:`ScipyObjective` evaluates
it once per point: every callback at a point it has seen recently (the last two)
is answered from what that evaluation returned (``grad_and_value`` gives the
value with the gradient, ``hvp_grad_and_value`` both with a Hessian-vector
product closure, ``hessian_grad_and_value`` all three with the Hessian).

SciPy is not imported here (nor anywhere in ``import diffops``): the objective is
plain callbacks that SciPy calls.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.boundary import as_input_array
from diffops.derivative import DerivativeFunction
from diffops.errors import require_shape

# Operators in increasing order of what they return; each gives everything of
# lower order too.
_OPERATORS = ("grad_and_value", "hvp_grad_and_value", "hessian_grad_and_value")
_GRADIENT, _HVP, _HESSIAN = 0, 1, 2

# Points kept: the trust-region methods evaluate a trial point and, when they reject
# it, return to the current one for more Hessian-vector products.
_CACHED_POINTS = 2


class _Point:
    """What one evaluation returned at one point (``x`` is a private copy)."""

    __slots__ = ("grad", "hessian", "hvp", "level", "value", "x")

    def __init__(
        self,
        x: np.ndarray,
        level: int,
        out: tuple[Any, ...],
    ):
        self.x = x
        self.level = level
        self.hvp: Callable[[np.ndarray], np.ndarray] | None = None
        self.hessian: np.ndarray | None = None
        if level == _GRADIENT:
            self.grad, self.value = out
        elif level == _HVP:
            self.hvp, self.grad, self.value = out
        else:
            self.hessian, self.grad, self.value = out


class ScipyObjective:
    """Value, gradient, Hessian and Hessian-vector products for SciPy's optimisers.

    Built by :func:`scipy_objective`; pass its methods to
    ``scipy.optimize.minimize``. The model is evaluated once per point: the last
    two points and what was computed there are kept (``x`` copied and compared by
    value, so SciPy may reuse or overwrite its arrays), and a callback at either
    costs no new evaluation. Two, because trust-region methods evaluate a trial
    point and, when they reject it, go back to the current one. Every array
    returned is a fresh, writable copy, so SciPy cannot change the cache by
    writing into it.

    With ``prefetch=True`` (the default), a new point is evaluated with the
    highest-order operator the optimiser has asked for so far: once ``hessp`` has
    been called, new points are evaluated with ``hvp_grad_and_value``, so the
    value, gradient and products at an accepted point cost one evaluation. With
    ``prefetch=False``, only what is asked for is evaluated, and a higher-order
    request at the same point evaluates again (trial points that the optimiser
    rejects then never pay for more than the gradient).

    Attributes:
        derivatives: The three derivative functions, by operator name
            (``grad_and_value``, ``hvp_grad_and_value``,
            ``hessian_grad_and_value``).
        args: Extra arguments passed to the function after ``x``.
        prefetch: Whether new points are evaluated with the highest-order operator
            asked for so far.
        evaluations: Model evaluations so far, by operator name.
        hvp_products: Hessian-vector products computed with an HVP closure (the
            products answered from a stored Hessian are not counted).
        calls: Calls from the optimiser so far, by method name (``fun``, ``jac``,
            ``fun_and_jac``, ``hess``, ``hessp``).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        backend: str = "jax",
        args: tuple[Any, ...] = (),
        *,
        prefetch: bool = True,
        **options: Any,
    ):
        self.derivatives = {
            name: DerivativeFunction(func, name, backend, **options)
            for name in _OPERATORS
        }
        self.args = tuple(args)
        self.prefetch = bool(prefetch)
        self._func = func
        self._backend = backend
        self._options = options
        self._lock = _thread.allocate_lock()
        self._points: list[_Point] = []  # most recent first
        self._asked = _GRADIENT  # highest order asked for so far
        self.evaluations = dict.fromkeys(_OPERATORS, 0)
        self.hvp_products = 0
        self.calls = dict.fromkeys(("fun", "jac", "fun_and_jac", "hess", "hessp"), 0)

    @property
    def n_evaluations(self) -> int:
        """Model evaluations so far, all operators together."""
        return sum(self.evaluations.values())

    def _at(self, x: Any, level: int, method: str, extra: tuple[Any, ...]) -> _Point:
        """The point ``x`` with at least ``level`` computed (caller holds the lock)."""
        if extra:
            msg = (
                f"ScipyObjective.{method} got {len(extra)} extra argument(s) from the "
                f"optimiser: pass the function's data to "
                f"scipy_objective(func, args=...), not to scipy.optimize.minimize."
            )
            raise TypeError(msg)
        self.calls[method] += 1
        self._asked = max(self._asked, level)
        arr = as_input_array(x)
        found = None
        for i, point in enumerate(self._points):
            if arr.shape == point.x.shape and np.array_equal(arr, point.x):
                found = self._points.pop(i)
                break
        if found is None:
            level = max(level, self._asked) if self.prefetch else level
        elif found.level >= level:
            self._points.insert(0, found)
            return found
        copy = np.array(arr, copy=True)  # owned: SciPy may overwrite its array
        name = _OPERATORS[level]
        out = self.derivatives[name](copy, *self.args)
        self.evaluations[name] += 1
        point = _Point(copy, level, out)
        self._points.insert(0, point)
        del self._points[_CACHED_POINTS:]
        return point

    def fun(self, x: Any, *extra: Any) -> float:
        """The value ``f(x)``.

        Args:
            x: Point of shape ``(n,)`` (any shape ``S`` the function takes).
            *extra: Must be empty: pass data to :func:`scipy_objective` instead.

        Returns:
            The value as a Python float.
        """
        with self._lock:
            return float(self._at(x, _GRADIENT, "fun", extra).value)

    __call__ = fun

    def jac(self, x: Any, *extra: Any) -> np.ndarray:
        """The gradient ``g[k] = ∂f/∂x[k]``.

        Args:
            x: Point of shape ``(n,)``.
            *extra: Must be empty: pass data to :func:`scipy_objective` instead.

        Returns:
            Writable array of shape ``(n,)``.
        """
        with self._lock:
            return np.array(self._at(x, _GRADIENT, "jac", extra).grad, copy=True)

    def fun_and_jac(self, x: Any, *extra: Any) -> tuple[float, np.ndarray]:
        """The value and the gradient, for ``minimize(..., jac=True)``.

        Args:
            x: Point of shape ``(n,)``.
            *extra: Must be empty: pass data to :func:`scipy_objective` instead.

        Returns:
            ``(value, grad)``: a Python float and a writable array of shape ``(n,)``.
        """
        with self._lock:
            point = self._at(x, _GRADIENT, "fun_and_jac", extra)
            return float(point.value), np.array(point.grad, copy=True)

    def hess(self, x: Any, *extra: Any) -> np.ndarray:
        """The Hessian ``H[j, k] = ∂²f/(∂x[j] ∂x[k])`` (formed: ``n²`` numbers).

        Args:
            x: Point of shape ``(n,)``.
            *extra: Must be empty: pass data to :func:`scipy_objective` instead.

        Returns:
            Writable array of shape ``(n, n)``.
        """
        with self._lock:
            hessian = self._at(x, _HESSIAN, "hess", extra).hessian
            return np.array(hessian, copy=True)

    def hessp(self, x: Any, p: Any, *extra: Any) -> np.ndarray:
        """The Hessian-vector product ``H @ p``, without forming ``H``.

        ``(H @ p)[j] = Σ_k ∂²f/(∂x[j] ∂x[k]) p[k]``: one call of the
        ``hvp_grad_and_value`` closure stored for ``x`` (the model is evaluated
        only when ``x`` is new), or a product with the Hessian if ``hess`` was
        already asked for at ``x``.

        Args:
            x: Point of shape ``(n,)``.
            p: Direction of shape ``(n,)``.
            *extra: Must be empty: pass data to :func:`scipy_objective` instead.

        Returns:
            Writable array of shape ``(n,)``.
        """
        with self._lock:
            point = self._at(x, _HVP, "hessp", extra)
            p = as_input_array(p, what="hessp direction")
            if point.hessian is not None:
                require_shape(
                    p.shape, point.x.shape, "direction of hessp", "Pass p shaped as x."
                )
                return np.asarray(np.tensordot(point.hessian, p, axes=p.ndim))
            assert point.hvp is not None
            self.hvp_products += 1
            product = point.hvp(p)
        # The closure's result is not cached; copy only what SciPy could not write.
        return product if product.flags.writeable else np.array(product, copy=True)

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self._options.items())
        name = getattr(self._func, "__name__", type(self._func).__name__)
        return (
            f"scipy_objective({name}, backend={self._backend!r}, "
            f"args=<{len(self.args)}>, prefetch={self.prefetch}{opts})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The recipe, without the cache, counters or lock (e.g. for SciPy's
        # ``workers`` or a process pool of optimisations).
        return (
            _rebuild,
            (self._func, self._backend, self.args, self.prefetch, self._options),
        )


def _rebuild(
    func: Callable[..., Any],
    backend: str,
    args: tuple[Any, ...],
    prefetch: bool,
    options: dict[str, Any],
) -> ScipyObjective:
    return ScipyObjective(func, backend, args, prefetch=prefetch, **options)


def scipy_objective(
    func: Callable[..., Any],
    backend: str = "jax",
    args: tuple[Any, ...] = (),
    *,
    prefetch: bool = True,
    **options: Any,
) -> ScipyObjective:
    """Build the callbacks of ``scipy.optimize.minimize`` for a scalar function.

    The model is evaluated once per point, whichever callbacks SciPy makes there:

    >>> import jax.numpy as jnp, numpy as np                   # doctest: +SKIP
    >>> from scipy.optimize import minimize                    # doctest: +SKIP
    >>> def rosen(x):                                          # doctest: +SKIP
    ...     return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    >>> obj = diffops.scipy_objective(rosen)                   # doctest: +SKIP
    >>> minimize(obj.fun, np.zeros(5), jac=obj.jac, hessp=obj.hessp,
    ...          method="trust-krylov")                        # doctest: +SKIP
    >>> minimize(obj.fun_and_jac, np.zeros(5), jac=True, hess=obj.hess,
    ...          method="trust-exact")                         # doctest: +SKIP

    ``hessp`` applies a Hessian-vector product closure (``hvp_grad_and_value``)
    and never forms the Hessian, so it fits problems whose ``n × n`` Hessian would
    not fit in memory; ``hess`` forms it (``hessian_grad_and_value``).

    Args:
        func: Scalar-valued function ``func(x, *args)`` of ``x`` of shape ``(n,)``
            (SciPy's flat vector), written with the backend's framework.
        backend: Backend name (case-insensitive), default ``"jax"``.
        args: Extra arguments of ``func`` (data), passed through undifferentiated.
            Give them here rather than as ``minimize(..., args=...)``.
        prefetch: At a new point, evaluate the highest-order operator asked for so
            far (default ``True``: one evaluation per accepted point); ``False``
            evaluates only what is asked for and evaluates again for a
            higher-order request at the same point.
        **options: Backend options (``arg_shape``, ``extra_shapes`` on ``symnum``).

    Returns:
        A :class:`ScipyObjective` with methods ``fun(x) -> float``,
        ``jac(x) -> (n,)``, ``fun_and_jac(x) -> (float, (n,))``,
        ``hess(x) -> (n, n)`` and ``hessp(x, p) -> (n,)`` (writable NumPy arrays),
        and counters ``evaluations``, ``hvp_products`` and ``calls``.

    Raises:
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return ScipyObjective(func, backend, args, prefetch=prefetch, **options)
