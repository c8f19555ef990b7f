"""Constraints for ``scipy.optimize.minimize(method="trust-constr")``.

:func:`scipy_constraint` is a ``NonlinearConstraint`` whose Jacobian is sparse and
whose Hessian term is one sparse Hessian of ``x -> Σ v·c(x)`` (multipliers as an
extra argument) or Hessian-vector products; a value and its Jacobian at a point
cost one evaluation.
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
    HESSIAN,
    HESSIAN_KINDS,
    OPERATORS,
    Callbacks,
)

_VALUE, _JACOBIAN = 0, 1
"""A constraint's levels: the value alone, or with the Jacobian."""


class ScipyConstraint(Callbacks):
    """Value, Jacobian and Hessian term of a constraint function for SciPy.

    Built by :func:`scipy_constraint`, which hands its methods to a
    ``scipy.optimize.NonlinearConstraint`` (this object is that constraint's
    ``fun``). The value and the Jacobian at a point come from one
    ``jacobian_and_value`` evaluation, the last two points are kept (as in
    :class:`ScipyObjective`), and ``hess(x, v)`` is one Hessian of the function
    ``x -> Σ_i v[i] c(x)[i]`` with ``v`` an extra argument
    (:class:`~diffops.lagrangian.WeightedConstraints`): its structure is found once
    and new multipliers compile nothing new.

    Attributes:
        derivatives: The derivative functions, by operator name:
            ``jacobian_and_value`` of the constraints, and ``hessian_grad_and_value``
            (``hessian="matrix"``) or ``hvp_grad_and_value`` (``hessian="hvp"``) of
            the weighted constraints.
        args: Extra arguments passed to the function after ``x``.
        prefetch: Whether new points are evaluated with the Jacobian once it has
            been asked for (``False``: the value alone until ``jac`` is called).
        sparsity: The Jacobian's and Hessian's sparsity (``None``: dense).
        hessian: ``"matrix"`` or ``"hvp"``.
        evaluations: Evaluations so far, by name: ``value`` (the function alone),
            ``jacobian_and_value`` and the Hessian's operator.
        hvp_products: Hessian-vector products computed (``hessian="hvp"``).
        calls: Calls from the optimiser so far, by method name (``fun``, ``jac``,
            ``hess``).
    """

    _methods = ("fun", "jac", "hess")
    _builder = "scipy_constraint"

    def __init__(
        self,
        func: Callable[..., Any],
        backend: str = "jax",
        args: tuple[Any, ...] = (),
        *,
        sparsity: Any = "detect",
        hessian: str = "matrix",
        prefetch: bool = True,
        **options: Any,
    ):
        if hessian not in HESSIAN_KINDS:
            msg = (
                f"hessian={hessian!r} is not one of {HESSIAN_KINDS}: pass 'matrix' "
                f"for the Hessian term as a (sparse) matrix or 'hvp' for a "
                f"LinearOperator of Hessian-vector products."
            )
            raise ValueError(msg)
        from diffops.compat import wrap_function
        from diffops.lagrangian import WeightedConstraints

        sparse = {"sparsity": sparsity} if sparsity is not None else {}
        hessian_op = "hvp_grad_and_value" if hessian == "hvp" else OPERATORS[HESSIAN]
        hessian_options = {}
        if hessian == "matrix" and sparsity is not None:
            hessian_options = {"sparsity": _hessian_sparsity(sparsity)}
        self.derivatives = {
            "jacobian_and_value": DerivativeFunction(
                func, "jacobian_and_value", backend, **sparse, **options
            ),
            hessian_op: DerivativeFunction(
                WeightedConstraints(func),
                hessian_op,
                backend,
                **hessian_options,
                **options,
            ),
        }
        self.hessian = hessian
        own = {"prefetch": prefetch, "sparsity": sparsity, "hessian": hessian}
        super().__init__(func, backend, args, own, options)
        self._value = wrap_function(func, backend)
        self._points = PointCache(
            [("value", self._evaluate_value), ("jacobian_and_value", self._jacobian)],
            size=CACHED_POINTS,
            prefetch=prefetch,
        )
        self._hessians = PointCache([(hessian_op, self._hessian_term)], size=1)
        self._value_shape: tuple[int, ...] | None = None

    @property
    def evaluations(self) -> dict[str, int]:
        """Evaluations so far, by name (see the class attributes)."""
        return {**self._points.evaluations, **self._hessians.evaluations}

    @property
    def n_evaluations(self) -> int:
        """Evaluations so far, all kinds together."""
        return sum(self.evaluations.values())

    def _evaluate_value(self, x: np.ndarray) -> tuple[Any, ...]:
        return (np.asarray(self._value(x, *self.args)),)

    def _jacobian(self, x: np.ndarray) -> tuple[Any, ...]:
        return tuple(self.derivatives["jacobian_and_value"](x, *self.args))

    def _hessian_term(self, x: np.ndarray, v: np.ndarray) -> tuple[Any, ...]:
        (name,) = self._hessians.names
        return tuple(self.derivatives[name](x, v, *self.args))

    def _at(self, x: Any, level: int, method: str) -> CachedPoint:
        self.calls[method] += 1
        point = self._points.at(level, as_input_array(x))
        if self._value_shape is None:
            self._value_shape = np.shape(point.value)
        return point

    def fun(self, x: Any) -> np.ndarray:
        """The constraints' values ``c(x)``, flattened.

        Args:
            x: Point of shape ``(n,)``.

        Returns:
            Writable array of shape ``(m,)`` (``m = prod(F)``).
        """
        with self._lock:
            return np.array(self._at(x, _VALUE, "fun").value, copy=True).reshape(-1)

    __call__ = fun

    def jac(self, x: Any) -> Any:
        """The Jacobian ``J[i, k] = ∂c[i]/∂x[k]``.

        Args:
            x: Point of shape ``(n,)``.

        Returns:
            A ``scipy.sparse.csr_array`` of shape ``(m, n)`` with the same structure
            (explicit zeros included) at every point, or with ``sparsity=None`` a
            writable dense array of that shape.
        """
        with self._lock:
            jacobian = self._at(x, _JACOBIAN, "jac").out[0]
            if isinstance(jacobian, np.ndarray):
                return np.array(jacobian, copy=True).reshape(-1, np.size(x))
            return jacobian.copy()

    def hess(self, x: Any, v: Any) -> Any:
        """The constraints' Hessian term ``Σ_i v[i] ∂²c[i]/(∂x[j] ∂x[k])``.

        Args:
            x: Point of shape ``(n,)``.
            v: Multipliers of shape ``(m,)``, one per constraint.

        Returns:
            With ``hessian="matrix"``: a ``scipy.sparse.csr_array`` of shape
            ``(n, n)`` (a writable dense array with ``sparsity=None``). With
            ``hessian="hvp"``: a ``scipy.sparse.linalg.LinearOperator`` of shape
            ``(n, n)`` whose ``matvec`` is one Hessian-vector product.
        """
        with self._lock:
            self.calls["hess"] += 1
            arr = as_input_array(x)
            if self._value_shape is None:
                self._value_shape = np.shape(self._points.at(_VALUE, arr).value)
            weights = as_input_array(v, what="multipliers v").astype(arr.dtype)
            require_shape(
                weights.shape,
                (int(np.prod(self._value_shape)),),
                "multipliers v of hess",
                "Pass one multiplier per constraint value.",
            )
            weights = weights.reshape(self._value_shape)
            term = self._hessians.at(0, arr, (weights,)).out[0]
        if self.hessian == "hvp":
            return self._operator(term, arr)
        if isinstance(term, np.ndarray):
            return np.array(term, copy=True).reshape(arr.size, arr.size)
        return term.copy()

    def _operator(self, hvp: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> Any:
        from scipy.sparse.linalg import LinearOperator

        def matvec(p: np.ndarray) -> np.ndarray:
            with self._lock:
                self.hvp_products += 1
            direction = np.asarray(p, dtype=x.dtype).reshape(x.shape)
            return np.array(hvp(direction), copy=True).reshape(np.shape(p))

        # Symmetric: the transpose product is the product.
        return LinearOperator(
            (x.size, x.size), matvec=matvec, rmatvec=matvec, dtype=x.dtype
        )


def _hessian_sparsity(jacobian_sparsity: Any) -> Any:
    """The sparsity of ``Σ_i v[i] ∇²c[i]`` given that of the Jacobian of ``c``.

    ``"detect"`` stays ``"detect"``. For a given Jacobian pattern ``P`` (``m × n``):
    ``∇²c[i]`` can be non-zero only where both variables are in row ``i`` of ``P``,
    so the union over ``i`` is the pattern of ``Pᵀ P`` (conservative: a linear
    constraint has no second derivatives but fills its block).
    """
    if isinstance(jacobian_sparsity, str):
        return jacobian_sparsity
    from scipy import sparse

    pattern = sparse.csr_array(jacobian_sparsity, dtype=np.float64)
    pattern.data[:] = 1.0
    return (pattern.T @ pattern).astype(bool)


def scipy_constraint(
    func: Callable[..., Any],
    lb: Any = -np.inf,
    ub: Any = np.inf,
    backend: str = "jax",
    args: tuple[Any, ...] = (),
    *,
    sparsity: Any = "detect",
    hessian: str = "matrix",
    keep_feasible: Any = False,
    prefetch: bool = True,
    **options: Any,
) -> Any:
    """Build a ``scipy.optimize.NonlinearConstraint`` ``lb <= func(x) <= ub``.

    Its ``jac`` is the sparse Jacobian (``jacobian_and_value`` with
    ``sparsity="detect"``) and its ``hess(x, v)`` the constraints' term of the
    Lagrangian's Hessian, ``Σ_i v[i] ∇²c[i](x)``, computed as one sparse Hessian of
    ``x -> Σ_i v[i] c(x)[i]`` with ``v`` an extra argument (the structure is found
    once; new multipliers compile nothing new), or as a ``LinearOperator`` of
    Hessian-vector products (``hessian="hvp"``). For
    ``scipy.optimize.minimize(method="trust-constr")``, with an objective from
    :func:`scipy_objective` (the docs' Constrained optimisation page has examples).

    Its ``fun`` is a :class:`ScipyConstraint` (with ``evaluations`` and the
    ``derivatives``); the value and the Jacobian at a point cost one evaluation.

    Args:
        func: Array-valued ``func(x, *args)`` of ``x`` of shape ``(n,)``, with
            values of any shape ``F`` (flattened to ``m = prod(F)`` constraints),
            written with the backend's framework.
        lb: Lower bounds, a scalar or shape ``(m,)`` (``-inf``: none; ``lb == ub``
            makes an equality).
        ub: Upper bounds, a scalar or shape ``(m,)`` (``inf``: none).
        backend: Backend name (case-insensitive), default ``"jax"``.
        args: Extra arguments of ``func`` (data), passed through undifferentiated.
        sparsity: ``"detect"`` (default; ``jax`` and ``jax_nojit``) or a boolean
            pattern of the Jacobian, shape ``(m, n)`` (any backend): the Jacobian
            and, with ``hessian="matrix"``, the Hessian term are
            ``scipy.sparse.csr_array``. A given Jacobian pattern ``P`` gives the
            Hessian term the pattern of ``Pᵀ P`` (each constraint's second
            derivatives lie among the variables of its row). ``None``: dense
            arrays.
        hessian: ``"matrix"`` (default): ``hess`` returns the Hessian term as a
            matrix. ``"hvp"``: a ``LinearOperator`` of Hessian-vector products,
            never formed (for large ``n``).
        keep_feasible: SciPy's ``keep_feasible``.
        prefetch: At a new point, evaluate the Jacobian with the value once ``jac``
            has been asked for (default ``True``); ``False`` evaluates the value
            alone until ``jac`` is called at that point.
        **options: Backend options passed to the derivative functions.

    Returns:
        A ``scipy.optimize.NonlinearConstraint`` whose ``fun`` is a
        :class:`ScipyConstraint`.

    Raises:
        ValueError: For an unknown ``hessian``, an unknown backend name (or a backend
            not installed), or a ``func`` that is not callable (a ``TypeError``).
    """
    from scipy.optimize import NonlinearConstraint

    callbacks = ScipyConstraint(
        func,
        backend,
        args,
        sparsity=sparsity,
        hessian=hessian,
        prefetch=prefetch,
        **options,
    )
    return NonlinearConstraint(
        callbacks,
        lb,
        ub,
        jac=callbacks.jac,
        hess=callbacks.hess,
        keep_feasible=keep_feasible,
    )
