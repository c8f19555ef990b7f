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

from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.boundary import as_input_array
from diffops.derivative import DerivativeFunction
from diffops.errors import require_shape
from diffops.point_cache import CachedPoint, PointCache
from diffops.scipy.common import (
    CACHED_POINTS,
    GRADIENT,
    HESSIAN,
    HVP,
    OPERATORS,
    Callbacks,
)


class ScipyObjective(Callbacks):
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

    With ``sparsity="detect"`` (or a pattern), ``hess`` returns the Hessian as a
    ``scipy.sparse.csr_array`` (colored Hessian-vector products), as
    ``method="trust-constr"`` takes it.

    Attributes:
        derivatives: The three derivative functions, by operator name
            (``grad_and_value``, ``hvp_grad_and_value``,
            ``hessian_grad_and_value``).
        args: Extra arguments passed to the function after ``x``.
        prefetch: Whether new points are evaluated with the highest-order operator
            asked for so far.
        sparsity: The Hessian's sparsity (``None``: dense).
        evaluations: Model evaluations so far, by operator name.
        hvp_products: Hessian-vector products computed with an HVP closure (the
            products answered from a stored Hessian are not counted).
        calls: Calls from the optimiser so far, by method name (``fun``, ``jac``,
            ``fun_and_jac``, ``hess``, ``hessp``).
    """

    _methods = ("fun", "jac", "fun_and_jac", "hess", "hessp")
    _builder = "scipy_objective"

    def __init__(
        self,
        func: Callable[..., Any],
        backend: str = "jax",
        args: tuple[Any, ...] = (),
        *,
        prefetch: bool = True,
        sparsity: Any = None,
        **options: Any,
    ):
        sparse = {"sparsity": sparsity} if sparsity is not None else {}
        self.derivatives = {
            name: DerivativeFunction(
                func,
                name,
                backend,
                **(sparse if name == OPERATORS[HESSIAN] else {}),
                **options,
            )
            for name in OPERATORS
        }
        own = {"prefetch": prefetch, "sparsity": sparsity}
        super().__init__(func, backend, args, own, options)
        self._cache = PointCache(
            [(name, self._evaluator(name)) for name in OPERATORS],
            size=CACHED_POINTS,
            prefetch=prefetch,
        )
        self.evaluations = self._cache.evaluations

    @property
    def n_evaluations(self) -> int:
        """Model evaluations so far, all operators together."""
        return sum(self.evaluations.values())

    def _evaluator(self, name: str) -> Callable[..., tuple[Any, ...]]:
        derivative = self.derivatives[name]
        return lambda x: derivative(x, *self.args)

    def _at(
        self, x: Any, level: int, method: str, extra: tuple[Any, ...]
    ) -> CachedPoint:
        """The point ``x`` with at least ``level`` computed (caller holds the lock)."""
        if extra:
            msg = (
                f"ScipyObjective.{method} got {len(extra)} extra argument(s) from the "
                f"optimiser: pass the function's data to "
                f"scipy_objective(func, args=...), not to scipy.optimize.minimize."
            )
            raise TypeError(msg)
        self.calls[method] += 1
        return self._cache.at(level, as_input_array(x))

    def fun(self, x: Any, *extra: Any) -> float:
        """The value ``f(x)``.

        Args:
            x: Point of shape ``(n,)`` (any shape ``S`` the function takes).
            *extra: Must be empty: pass data to :func:`scipy_objective` instead.

        Returns:
            The value as a Python float.
        """
        with self._lock:
            return float(self._at(x, GRADIENT, "fun", extra).value)

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
            return np.array(self._at(x, GRADIENT, "jac", extra).out[-2], copy=True)

    def fun_and_jac(self, x: Any, *extra: Any) -> tuple[float, np.ndarray]:
        """The value and the gradient, for ``minimize(..., jac=True)``.

        Args:
            x: Point of shape ``(n,)``.
            *extra: Must be empty: pass data to :func:`scipy_objective` instead.

        Returns:
            ``(value, grad)``: a Python float and a writable array of shape ``(n,)``.
        """
        with self._lock:
            point = self._at(x, GRADIENT, "fun_and_jac", extra)
            return float(point.value), np.array(point.out[-2], copy=True)

    def hess(self, x: Any, *extra: Any) -> Any:
        """The Hessian ``H[j, k] = ∂²f/(∂x[j] ∂x[k])``.

        Dense (``n²`` numbers) by default; with ``sparsity=`` a
        ``scipy.sparse.csr_array`` holding the structural non-zeros (its structure,
        explicit zeros included, is the same at every point).

        Args:
            x: Point of shape ``(n,)``.
            *extra: Must be empty: pass data to :func:`scipy_objective` instead.

        Returns:
            Writable array of shape ``(n, n)``, or a ``csr_array`` of that shape.
        """
        with self._lock:
            hessian = self._at(x, HESSIAN, "hess", extra).out[0]
            if isinstance(hessian, np.ndarray):
                return np.array(hessian, copy=True)
            return hessian.copy()

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
            point = self._at(x, HVP, "hessp", extra)
            p = as_input_array(p, what="hessp direction")
            if point.level == HESSIAN:
                require_shape(
                    p.shape, point.x.shape, "direction of hessp", "Pass p shaped as x."
                )
                hessian = point.out[0]
                if not isinstance(hessian, np.ndarray):  # sparse: (n, n) flattened
                    return np.asarray(hessian @ p.reshape(-1)).reshape(p.shape)
                return np.asarray(np.tensordot(hessian, p, axes=p.ndim))
            self.hvp_products += 1
            product = point.out[0](p)
        # The closure's result is not cached; copy only what SciPy could not write.
        return product if product.flags.writeable else np.array(product, copy=True)


def scipy_objective(
    func: Callable[..., Any],
    backend: str = "jax",
    args: tuple[Any, ...] = (),
    *,
    prefetch: bool = True,
    sparsity: Any = None,
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
        sparsity: ``None`` (default): ``hess`` returns a dense ``(n, n)`` array.
            ``"detect"`` (``jax``, ``jax_nojit``) or a boolean pattern: ``hess``
            returns a ``scipy.sparse.csr_array`` (the structure found once, the
            products colored; see ``hessian_grad_and_value``), as
            ``method="trust-constr"`` takes it.
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
    return ScipyObjective(
        func, backend, args, prefetch=prefetch, sparsity=sparsity, **options
    )


# Levels of a constraint's point cache: the value alone, then with the Jacobian.
_VALUE, _JACOBIAN = 0, 1
