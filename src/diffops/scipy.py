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
from diffops.point_cache import CachedPoint, PointCache

# Operators in increasing order of what they return; each gives everything of
# lower order too.
_OPERATORS = ("grad_and_value", "hvp_grad_and_value", "hessian_grad_and_value")
_GRADIENT, _HVP, _HESSIAN = 0, 1, 2

# Points kept: the trust-region methods evaluate a trial point and, when they reject
# it, return to the current one for more Hessian-vector products.
_CACHED_POINTS = 2


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
                **(sparse if name == _OPERATORS[_HESSIAN] else {}),
                **options,
            )
            for name in _OPERATORS
        }
        self.args = tuple(args)
        self.prefetch = bool(prefetch)
        self.sparsity = sparsity
        self._func = func
        self._backend = backend
        self._options = options
        self._lock = _thread.allocate_lock()
        self._cache = PointCache(
            [(name, self._evaluator(name)) for name in _OPERATORS],
            size=_CACHED_POINTS,
            prefetch=prefetch,
        )
        self.evaluations = self._cache.evaluations
        self.hvp_products = 0
        self.calls = dict.fromkeys(("fun", "jac", "fun_and_jac", "hess", "hessp"), 0)

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
            return np.array(self._at(x, _GRADIENT, "jac", extra).out[-2], copy=True)

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
            hessian = self._at(x, _HESSIAN, "hess", extra).out[0]
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
            point = self._at(x, _HVP, "hessp", extra)
            p = as_input_array(p, what="hessp direction")
            if point.level == _HESSIAN:
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

    def __repr__(self) -> str:
        options = self._options
        if self.sparsity is not None:
            options = {"sparsity": _describe(self.sparsity), **options}
        opts = "".join(f", {k}={v!r}" for k, v in options.items())
        return (
            f"scipy_objective({_name(self._func)}, backend={self._backend!r}, "
            f"args=<{len(self.args)}>, prefetch={self.prefetch}{opts})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The recipe, without the cache, counters or lock (e.g. for SciPy's
        # ``workers`` or a process pool of optimisations).
        options = {"prefetch": self.prefetch, "sparsity": self.sparsity}
        return (
            _rebuild,
            (
                ScipyObjective,
                self._func,
                self._backend,
                self.args,
                options,
                self._options,
            ),
        )


def _name(func: Callable[..., Any]) -> str:
    return str(getattr(func, "__name__", type(func).__name__))


def _describe(sparsity: Any) -> Any:
    """``sparsity`` for a repr: a name as it is, a pattern by its type and shape."""
    if isinstance(sparsity, str):
        return sparsity
    shape = getattr(sparsity, "shape", None)
    return f"<{type(sparsity).__name__} {shape}>"


def _rebuild(
    cls: Callable[..., Any],
    func: Callable[..., Any],
    backend: str,
    args: tuple[Any, ...],
    own: dict[str, Any],
    options: dict[str, Any],
) -> Any:
    return cls(func, backend, args, **own, **options)


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
_HESSIAN_KINDS = ("matrix", "hvp")


class ScipyConstraint:
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
        if hessian not in _HESSIAN_KINDS:
            msg = (
                f"hessian={hessian!r} is not one of {_HESSIAN_KINDS}: pass 'matrix' "
                f"for the Hessian term as a (sparse) matrix or 'hvp' for a "
                f"LinearOperator of Hessian-vector products."
            )
            raise ValueError(msg)
        from diffops.compat import wrap_function
        from diffops.lagrangian import WeightedConstraints

        sparse = {"sparsity": sparsity} if sparsity is not None else {}
        hessian_op = "hvp_grad_and_value" if hessian == "hvp" else _OPERATORS[_HESSIAN]
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
        self.args = tuple(args)
        self.prefetch = bool(prefetch)
        self.sparsity = sparsity
        self.hessian = hessian
        self._func = func
        self._backend = backend
        self._options = options
        self._value = wrap_function(func, backend)
        self._lock = _thread.allocate_lock()
        self._points = PointCache(
            [("value", self._evaluate_value), ("jacobian_and_value", self._jacobian)],
            size=_CACHED_POINTS,
            prefetch=prefetch,
        )
        self._hessians = PointCache([(hessian_op, self._hessian_term)], size=1)
        self._value_shape: tuple[int, ...] | None = None
        self.hvp_products = 0
        self.calls = dict.fromkeys(("fun", "jac", "hess"), 0)

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

    def __repr__(self) -> str:
        options = {"hessian": self.hessian, **self._options}
        if self.sparsity is not None:
            options = {"sparsity": _describe(self.sparsity), **options}
        opts = "".join(f", {k}={v!r}" for k, v in options.items())
        return (
            f"scipy_constraint({_name(self._func)}, backend={self._backend!r}, "
            f"args=<{len(self.args)}>, prefetch={self.prefetch}{opts})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        own = {
            "prefetch": self.prefetch,
            "sparsity": self.sparsity,
            "hessian": self.hessian,
        }
        return (
            _rebuild,
            (ScipyConstraint, self._func, self._backend, self.args, own, self._options),
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
    :func:`scipy_objective`:

    >>> def circle(x):                                         # doctest: +SKIP
    ...     return jnp.stack([x[0] ** 2 + x[1] ** 2])
    >>> con = diffops.scipy_constraint(circle, ub=1.0)         # doctest: +SKIP
    >>> obj = diffops.scipy_objective(lambda x: x[0] + x[1], sparsity="detect")
    >>> minimize(obj.fun, np.zeros(2), jac=obj.jac, hess=obj.hess,
    ...          constraints=[con], method="trust-constr")     # doctest: +SKIP

    The constraint's ``fun`` is a :class:`ScipyConstraint` (its ``jac`` and
    ``hess`` are that object's methods): ``con.fun.evaluations`` counts the
    evaluations, ``con.fun.derivatives`` holds the derivative functions (their
    ``.coloring`` tells how the sparse matrices are computed). The value and the
    Jacobian at a point cost one evaluation.

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
        ValueError: For an unknown ``hessian``.
        NotCallableError: If ``func`` is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
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
