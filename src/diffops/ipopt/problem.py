"""The IPOPT problem object: cyipopt's interface, derivatives from diffops."""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.boundary import as_input_array
from diffops.compat import wrap_function
from diffops.derivative import DerivativeFunction
from diffops.errors import ShapeMismatchError, function_name
from diffops.ipopt.layout import Layout
from diffops.lagrangian import Lagrangian
from diffops.point_cache import PointCache

__all__ = ["IpoptProblem"]

# Levels of the objective's and the constraints' point caches.
_VALUE, _DERIVATIVE = 0, 1
# cyipopt's callbacks, counted in ``calls``.
_METHODS = (
    "objective",
    "gradient",
    "constraints",
    "jacobian",
    "hessian",
    "jacobianstructure",
    "hessianstructure",
)
# IPOPT's line search evaluates a trial point and may go back to the current one.
_CACHED_POINTS = 2


def _checked(sparsity: Any, x0: Any, constraints: Any, cl: Any, cu: Any) -> np.ndarray:
    """The starting point as a vector, after checking the problem's arguments."""
    if not (sparsity is None or (isinstance(sparsity, str) and sparsity == "detect")):
        msg = (
            f"ipopt_problem takes sparsity='detect' or None, not {sparsity!r}: "
            f"the Jacobian's and the Lagrangian's Hessian's structures are read "
            f"from the functions (jax, jax_nojit), or dense (None, any backend)."
        )
        raise ValueError(msg)
    x = as_input_array(x0, copy=True, what="starting point x0")
    if x.ndim != 1:
        msg = (
            f"The starting point x0 has shape {x.shape}, but IPOPT's variables "
            f"are a vector of shape (n,). Flatten x0 (and reshape x inside the "
            f"functions) or pass x0.ravel()."
        )
        raise ShapeMismatchError(msg)
    if constraints is None and (cl is not None or cu is not None):
        msg = "cl and cu bound constraints: pass the constraints function too."
        raise ValueError(msg)
    if constraints is not None and (cl is None or cu is None):
        msg = (
            "ipopt_problem with constraints needs their bounds cl <= c(x) <= cu: "
            "pass cl and cu (scalars or arrays of shape (m,); cl == cu for "
            "equalities, -np.inf or np.inf for a missing side)."
        )
        raise ValueError(msg)
    return x


class IpoptProblem:
    """An IPOPT problem with derivatives from diffops, in cyipopt's interface.

    Built by :func:`ipopt_problem`. IPOPT calls ``objective`` and ``gradient`` (and
    ``constraints`` and ``jacobian``) at the same point one after the other: each
    pair costs one evaluation (the last two points are kept, compared by value). The
    methods take and return float64 NumPy arrays.

    Attributes:
        n: Number of variables.
        m: Number of constraint values (0 without constraints).
        x0: The starting point given, shape ``(n,)``.
        lb: Lower bounds of the variables, shape ``(n,)`` (``-inf``: none).
        ub: Upper bounds of the variables, shape ``(n,)`` (``inf``: none).
        cl: Lower bounds of the constraints, shape ``(m,)``.
        cu: Upper bounds of the constraints, shape ``(m,)``.
        args: Extra arguments of the objective.
        constraint_args: Extra arguments of the constraints.
        sparsity: ``"detect"`` or ``None`` (dense).
        derivatives: The derivative functions, by name: ``grad_and_value`` (of the
            objective), ``jacobian_and_value`` (of the constraints) and
            ``hessian_grad_and_value`` (of the Lagrangian); the sparse ones'
            ``coloring`` tells how their matrices are computed.
        calls: Calls from IPOPT so far, by method name.
    """

    def __init__(
        self,
        objective: Callable[..., Any],
        x0: Any,
        constraints: Callable[..., Any] | None,
        settings: dict[str, Any],
    ):
        """Build from :func:`ipopt_problem`'s arguments (documented there).

        Args:
            objective: The objective function.
            x0: The starting point.
            constraints: The constraints function, or ``None``.
            settings: :func:`ipopt_problem`'s keyword arguments, all of them (the
                keys other than its named ones are backend options).
        """
        self._settings = dict(settings)  # the recipe, for pickling
        settings = dict(settings)
        lb, ub, cl, cu = (settings.pop(name) for name in ("lb", "ub", "cl", "cu"))
        args, constraint_args = settings.pop("args"), settings.pop("constraint_args")
        backend, sparsity = settings.pop("backend"), settings.pop("sparsity")
        prefetch, options = settings.pop("prefetch"), settings
        x = _checked(sparsity, x0, constraints, cl, cu)
        self.x0 = x.astype(np.float64)
        self.n = self.x0.size
        self.lb = self._bounds(lb, -np.inf, self.n, "lb")
        self.ub = self._bounds(ub, np.inf, self.n, "ub")
        self.args = tuple(args)
        self.constraint_args = tuple(constraint_args)
        self.sparsity = sparsity
        self.prefetch = bool(prefetch)
        self._objective = objective
        self._constraints = constraints
        self._backend = backend
        self._options = options
        sparse: dict[str, Any] = {} if sparsity is None else {"sparsity": sparsity}
        lagrangian = Lagrangian(objective, constraints, len(self.args))
        self.derivatives = {
            "grad_and_value": DerivativeFunction(
                objective, "grad_and_value", backend, **options
            ),
            "hessian_grad_and_value": DerivativeFunction(
                lagrangian, "hessian_grad_and_value", backend, **sparse, **options
            ),
        }
        self._lock = _thread.allocate_lock()
        value = wrap_function(objective, backend)
        self._objective_points = PointCache(
            [
                ("objective", lambda x: (value(x, *self.args),)),
                (
                    "grad_and_value",
                    lambda x: self.derivatives["grad_and_value"](x, *self.args),
                ),
            ],
            size=_CACHED_POINTS,
            prefetch=prefetch,
        )
        self._hessians = PointCache(
            [("hessian_grad_and_value", self._lagrangian_hessian)], size=1
        )
        self._constraint_points: PointCache | None = None
        self._value_shape: tuple[int, ...] = (0,)
        if constraints is not None:
            self._add_constraints(constraints, sparse)
        self.m = int(np.prod(self._value_shape))
        self.cl = self._bounds(cl, 0.0, self.m, "cl")
        self.cu = self._bounds(cu, 0.0, self.m, "cu")
        self._jacobian_structure: Layout | None = None
        self._hessian_structure: Layout | None = None
        self.calls = dict.fromkeys(_METHODS, 0)

    def _add_constraints(self, constraints: Callable[..., Any], sparse: Any) -> None:
        """The constraints' derivative function and cache; ``m`` from ``x0``."""
        backend, options, prefetch = self._backend, self._options, self.prefetch
        self.derivatives["jacobian_and_value"] = DerivativeFunction(
            constraints, "jacobian_and_value", backend, **sparse, **options
        )
        constraint_value = wrap_function(constraints, backend)
        self._constraint_points = PointCache(
            [
                (
                    "constraints",
                    lambda x: (constraint_value(x, *self.constraint_args),),
                ),
                (
                    "jacobian_and_value",
                    lambda x: self.derivatives["jacobian_and_value"](
                        x, *self.constraint_args
                    ),
                ),
            ],
            size=_CACHED_POINTS,
            prefetch=prefetch,
        )
        # The constraints' shape, and so m, from one evaluation at x0.
        self._value_shape = np.shape(self._constraint_at(self.x0, _VALUE).value)

    @staticmethod
    def _bounds(bound: Any, default: float, size: int, name: str) -> np.ndarray:
        if bound is None:
            return np.full(size, default)
        arr = np.asarray(bound, dtype=np.float64)
        if arr.ndim == 0:
            return np.full(size, float(arr))
        if arr.shape != (size,):
            msg = (
                f"The bounds {name} have shape {arr.shape}, but a scalar or shape "
                f"({size},) is required (one per "
                f"{'variable' if name in ('lb', 'ub') else 'constraint value'})."
            )
            raise ShapeMismatchError(msg)
        return np.array(arr, copy=True)

    @property
    def evaluations(self) -> dict[str, int]:
        """Evaluations so far, by name.

        ``objective`` (the value alone), ``grad_and_value``, ``constraints`` (the
        values alone), ``jacobian_and_value`` and ``hessian_grad_and_value``.
        """
        counts = {**self._objective_points.evaluations}
        if self._constraint_points is not None:
            counts.update(self._constraint_points.evaluations)
        counts.update(self._hessians.evaluations)
        return counts

    def _point(self, x: Any) -> np.ndarray:
        return as_input_array(x, what="point x").astype(np.float64, copy=False)

    def _constraint_at(self, x: np.ndarray, level: int) -> Any:
        assert self._constraint_points is not None
        return self._constraint_points.at(level, x)

    def _lagrangian_hessian(
        self, x: np.ndarray, obj_factor: np.ndarray, lagrange: np.ndarray
    ) -> tuple[Any, ...]:
        hessian = self.derivatives["hessian_grad_and_value"]
        return tuple(
            hessian(x, obj_factor, lagrange, *self.args, *self.constraint_args)
        )

    # cyipopt's interface -------------------------------------------------------

    def objective(self, x: Any) -> float:
        """The objective's value ``f(x)``.

        Args:
            x: Point of shape ``(n,)``.

        Returns:
            The value as a Python float.
        """
        with self._lock:
            self.calls["objective"] += 1
            point = self._objective_points.at(_VALUE, self._point(x))
            return float(point.value)

    def gradient(self, x: Any) -> np.ndarray:
        """The objective's gradient ``g[k] = ∂f/∂x[k]``.

        Args:
            x: Point of shape ``(n,)``.

        Returns:
            Array of shape ``(n,)``.
        """
        with self._lock:
            self.calls["gradient"] += 1
            point = self._objective_points.at(_DERIVATIVE, self._point(x))
            return np.array(point.out[0], dtype=np.float64)

    def constraints(self, x: Any) -> np.ndarray:
        """The constraints' values ``c(x)``, flattened.

        Args:
            x: Point of shape ``(n,)``.

        Returns:
            Array of shape ``(m,)``.
        """
        with self._lock:
            self.calls["constraints"] += 1
            if self._constraint_points is None:
                return np.zeros(0)
            point = self._constraint_at(self._point(x), _VALUE)
            return np.array(point.value, dtype=np.float64).reshape(-1)

    def jacobianstructure(self) -> tuple[np.ndarray, np.ndarray]:
        """Where the constraints' Jacobian can be non-zero.

        Found once (at ``x0``): read from the function with ``sparsity="detect"``,
        every entry with ``sparsity=None``. Entries are in row-major order.

        Returns:
            ``(rows, cols)``: int64 arrays of shape ``(nnz,)``.
        """
        with self._lock:
            self.calls["jacobianstructure"] += 1
            structure = self._jacobian_layout()
            return structure.rows.copy(), structure.cols.copy()

    def _jacobian_layout(self) -> Layout:
        if self._jacobian_structure is None:
            if self._constraint_points is None:
                self._jacobian_structure = Layout(
                    np.zeros((0, self.n)), (0, self.n), lower=False
                )
            else:
                jacobian = self._constraint_at(self.x0, _DERIVATIVE).out[0]
                self._jacobian_structure = Layout(
                    jacobian, (self.m, self.n), lower=False
                )
        return self._jacobian_structure

    def jacobian(self, x: Any) -> np.ndarray:
        """The Jacobian's values ``∂c[i]/∂x[k]`` in the order of the structure.

        Args:
            x: Point of shape ``(n,)``.

        Returns:
            Array of shape ``(nnz,)``: entry ``e`` is ``J[rows[e], cols[e]]`` for
            ``rows, cols = jacobianstructure()``.
        """
        with self._lock:
            self.calls["jacobian"] += 1
            structure = self._jacobian_layout()
            if self._constraint_points is None:
                return np.zeros(0)
            jacobian = self._constraint_at(self._point(x), _DERIVATIVE).out[0]
            return structure.values(jacobian, "constraints' Jacobian")

    def hessianstructure(self) -> tuple[np.ndarray, np.ndarray]:
        """Where the lower triangle of the Lagrangian's Hessian can be non-zero.

        The structure of ``σ ∇²f + Σ λ[i] ∇²c[i]`` for every ``σ`` and ``λ``, found
        once (at ``x0``); only entries with ``row >= col``, in row-major order.

        Returns:
            ``(rows, cols)``: int64 arrays of shape ``(nnz,)`` with ``rows >= cols``.
        """
        with self._lock:
            self.calls["hessianstructure"] += 1
            structure = self._hessian_layout()
            return structure.rows.copy(), structure.cols.copy()

    def _hessian_layout(self) -> Layout:
        if self._hessian_structure is None:
            hessian = self._hessians.at(
                0, self.x0, (np.ones(()), np.ones(self._value_shape))
            ).out[0]
            self._hessian_structure = Layout(hessian, (self.n, self.n), lower=True)
        return self._hessian_structure

    def hessian(self, x: Any, lagrange: Any, obj_factor: Any) -> np.ndarray:
        """The lower triangle of ``obj_factor ∇²f(x) + Σ_i lagrange[i] ∇²c[i](x)``.

        Args:
            x: Point of shape ``(n,)``.
            lagrange: Multipliers of shape ``(m,)``.
            obj_factor: The objective's factor (a scalar).

        Returns:
            Array of shape ``(nnz,)``: entry ``e`` is ``H[rows[e], cols[e]]`` for
            ``rows, cols = hessianstructure()``.
        """
        with self._lock:
            self.calls["hessian"] += 1
            structure = self._hessian_layout()
            weights = np.asarray(lagrange, dtype=np.float64)
            if weights.size != self.m:
                msg = (
                    f"The multipliers have {weights.size} entries, but the problem "
                    f"has {self.m} constraint values."
                )
                raise ShapeMismatchError(msg)
            key = (
                np.asarray(obj_factor, dtype=np.float64).reshape(()),
                weights.reshape(self._value_shape),
            )
            hessian = self._hessians.at(0, self._point(x), key).out[0]
            return structure.values(hessian, "Lagrangian's Hessian")

    # Solving -------------------------------------------------------------------

    def to_cyipopt(self, **ipopt_options: Any) -> Any:
        """A ``cyipopt.Problem`` for this problem, with IPOPT options set.

        Args:
            **ipopt_options: IPOPT options (``tol=1e-10``, ``print_level=0``,
                ``hessian_approximation="limited-memory"``, ...), each passed to
                ``Problem.add_option``.

        Returns:
            A ``cyipopt.Problem``; add scaling or more options, then ``solve(x0)``.

        Raises:
            ImportError: If cyipopt is not installed (``pip install diffops[ipopt]``).
        """
        try:
            import cyipopt
        except ImportError as err:
            msg = (
                f"IpoptProblem.solve needs cyipopt ({err}): `pip install "
                f"diffops[ipopt]` (it installs the cyipopt-wheels package, with IPOPT "
                f"included), or cyipopt from conda-forge."
            )
            raise ImportError(msg) from err
        problem = cyipopt.Problem(
            n=self.n,
            m=self.m,
            problem_obj=self,
            lb=self.lb,
            ub=self.ub,
            cl=self.cl,
            cu=self.cu,
        )
        for name, value in ipopt_options.items():
            problem.add_option(name, value)
        return problem

    def solve(
        self, x0: Any = None, **ipopt_options: Any
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Solve with IPOPT from ``x0`` (default: the ``x0`` given when built).

        Args:
            x0: Starting point of shape ``(n,)``, or ``None`` for :attr:`x0`.
            **ipopt_options: IPOPT options, e.g. ``tol=1e-10``, ``print_level=0``
                (IPOPT prints its iterations by default), ``sb="yes"`` (no banner).

        Returns:
            cyipopt's ``(x, info)``: the solution of shape ``(n,)`` and a dict with
            ``obj_val``, ``status`` (0: solved), ``status_msg``, ``g`` (the
            constraints' values), ``mult_g``, ``mult_x_L`` and ``mult_x_U``.

        Raises:
            ImportError: If cyipopt is not installed.
        """
        start = self.x0 if x0 is None else self._point(x0)
        x, info = self.to_cyipopt(**ipopt_options).solve(np.array(start, copy=True))
        return x, info

    def __repr__(self) -> str:
        constraints = (
            None if self._constraints is None else function_name(self._constraints)
        )
        return (
            f"ipopt_problem({function_name(self._objective)}, n={self.n}, "
            f"constraints={constraints}, m={self.m}, backend={self._backend!r}, "
            f"sparsity={self.sparsity!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The recipe, without the caches, counters or lock.
        return (
            IpoptProblem,
            (self._objective, self.x0, self._constraints, self._settings),
        )
