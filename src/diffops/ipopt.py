"""Problems for IPOPT (through ``cyipopt``): :func:`ipopt_problem`.

IPOPT solves ``min f(x)`` subject to ``cl <= c(x) <= cu`` and ``lb <= x <= ub`` and
asks for sparse derivatives in coordinate form: the constraints' Jacobian as values in
the order of a structure ``(rows, cols)`` given once, and the Hessian of the Lagrangian
``σ ∇²f(x) + Σ_i λ[i] ∇²c[i](x)`` as the values of its lower triangle, in the order of
another fixed structure. :class:`IpoptProblem` builds all of it from the user's
traced functions:

- ``objective`` and ``gradient`` from one ``grad_and_value`` evaluation per point;
- ``constraints`` and ``jacobian`` from one sparse ``jacobian_and_value``
  evaluation per point, the structure read from the function (``sparsity="detect"``);
- ``hessian`` from one sparse ``hessian_grad_and_value`` of the Lagrangian
  ``x -> σ f(x) + Σ λ * c(x)`` (:class:`~diffops.lagrangian.Lagrangian`) with ``σ``
  and ``λ`` extra arguments, so its structure is found once for every ``σ`` and
  ``λ`` and each iteration reuses one compiled program.

The object has cyipopt's problem interface (``objective``, ``gradient``,
``constraints``, ``jacobian``, ``jacobianstructure``, ``hessian``,
``hessianstructure``), so it can be passed to ``cyipopt.Problem`` as it is;
:meth:`IpoptProblem.solve` does that. ``cyipopt`` is imported only there
(``pip install diffops[ipopt]``).
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any

import numpy as np

from diffops.boundary import as_input_array
from diffops.compat import wrap_function
from diffops.derivative import DerivativeFunction
from diffops.errors import ShapeMismatchError
from diffops.lagrangian import Lagrangian
from diffops.point_cache import PointCache

__all__ = ["IpoptProblem", "ipopt_problem"]

# Levels of the objective's and the constraints' point caches.
_VALUE, _DERIVATIVE = 0, 1
# IPOPT's line search evaluates a trial point and may go back to the current one.
_CACHED_POINTS = 2


class _Structure:
    """Row and column indices of the entries IPOPT takes from a matrix.

    For a CSR result: the structure as found at the first evaluation (checked at
    every later one, since IPOPT's values must stay in its order) and the indices
    into ``data`` of the entries IPOPT takes (all of them for a Jacobian, the lower
    triangle of a Hessian). For a dense result: every entry, or every entry of the
    lower triangle.
    """

    def __init__(self, matrix: Any, shape: tuple[int, int], lower: bool):
        self.dense = isinstance(matrix, np.ndarray)
        if self.dense:
            # Positions in the flattened matrix, in row-major order.
            if lower:
                rows, cols = np.tril_indices(shape[0])
            else:
                rows, cols = np.indices(shape).reshape(2, -1)
            self.take = np.ravel_multi_index((rows, cols), shape)
            self.indptr = self.indices = np.zeros(0, dtype=np.int64)
        else:
            # Positions in the CSR ``data``, which is in row-major order already.
            self.indptr = np.array(matrix.indptr, copy=True)
            self.indices = np.array(matrix.indices, copy=True)
            rows = np.repeat(np.arange(shape[0]), np.diff(self.indptr))
            cols = self.indices
            self.take = np.flatnonzero(rows >= cols) if lower else np.arange(cols.size)
            rows, cols = rows[self.take], cols[self.take]
        self.rows = np.asarray(rows, dtype=np.int64)
        self.cols = np.asarray(cols, dtype=np.int64)

    def values(self, matrix: Any, what: str) -> np.ndarray:
        """The entries IPOPT takes from ``matrix``, in the order of ``rows, cols``."""
        if self.dense:
            return np.array(np.reshape(matrix, -1)[self.take], dtype=np.float64)
        if not (
            np.array_equal(matrix.indptr, self.indptr)
            and np.array_equal(matrix.indices, self.indices)
        ):  # pragma: no cover - a sparse result's structure is fixed per signature
            msg = (
                f"The {what}'s sparse structure changed between evaluations, so its "
                f"values no longer match IPOPT's structure. Please report this as a "
                f"diffops bug."
            )
            raise RuntimeError(msg)
        return np.array(matrix.data[self.take], dtype=np.float64)


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
        constraints: Callable[..., Any] | None = None,
        *,
        lb: Any = None,
        ub: Any = None,
        cl: Any = None,
        cu: Any = None,
        args: tuple[Any, ...] = (),
        constraint_args: tuple[Any, ...] = (),
        backend: str = "jax",
        sparsity: str | None = "detect",
        prefetch: bool = True,
        **options: Any,
    ):
        if not (
            sparsity is None or (isinstance(sparsity, str) and sparsity == "detect")
        ):
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
        self.m = int(np.prod(self._value_shape))
        self.cl = self._bounds(cl, 0.0, self.m, "cl")
        self.cu = self._bounds(cu, 0.0, self.m, "cu")
        self._jacobian_structure: _Structure | None = None
        self._hessian_structure: _Structure | None = None
        self.calls = dict.fromkeys(
            (
                "objective",
                "gradient",
                "constraints",
                "jacobian",
                "hessian",
                "jacobianstructure",
                "hessianstructure",
            ),
            0,
        )

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

    def _jacobian_layout(self) -> _Structure:
        if self._jacobian_structure is None:
            if self._constraint_points is None:
                self._jacobian_structure = _Structure(
                    np.zeros((0, self.n)), (0, self.n), lower=False
                )
            else:
                jacobian = self._constraint_at(self.x0, _DERIVATIVE).out[0]
                self._jacobian_structure = _Structure(
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

    def _hessian_layout(self) -> _Structure:
        if self._hessian_structure is None:
            hessian = self._hessians.at(
                0, self.x0, (np.ones(()), np.ones(self._value_shape))
            ).out[0]
            self._hessian_structure = _Structure(hessian, (self.n, self.n), lower=True)
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
        constraints = None if self._constraints is None else _name(self._constraints)
        return (
            f"ipopt_problem({_name(self._objective)}, n={self.n}, "
            f"constraints={constraints}, m={self.m}, backend={self._backend!r}, "
            f"sparsity={self.sparsity!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The recipe, without the caches, counters or lock.
        keywords = {
            "lb": self.lb,
            "ub": self.ub,
            "cl": self.cl if self._constraints is not None else None,
            "cu": self.cu if self._constraints is not None else None,
            "args": self.args,
            "constraint_args": self.constraint_args,
            "backend": self._backend,
            "sparsity": self.sparsity,
            "prefetch": self.prefetch,
            **self._options,
        }
        return (
            _rebuild,
            (self._objective, self.x0, self._constraints, keywords),
        )


def _name(func: Callable[..., Any]) -> str:
    return str(getattr(func, "__name__", type(func).__name__))


def _rebuild(
    objective: Callable[..., Any],
    x0: np.ndarray,
    constraints: Callable[..., Any] | None,
    keywords: dict[str, Any],
) -> IpoptProblem:
    return IpoptProblem(objective, x0, constraints, **keywords)


def ipopt_problem(
    objective: Callable[..., Any],
    x0: Any,
    constraints: Callable[..., Any] | None = None,
    *,
    lb: Any = None,
    ub: Any = None,
    cl: Any = None,
    cu: Any = None,
    args: tuple[Any, ...] = (),
    constraint_args: tuple[Any, ...] = (),
    backend: str = "jax",
    sparsity: str | None = "detect",
    prefetch: bool = True,
    **options: Any,
) -> IpoptProblem:
    """Build an IPOPT problem ``min f(x)``, ``cl <= c(x) <= cu``, ``lb <= x <= ub``.

    The result has cyipopt's problem interface, every derivative from the traced
    functions: the gradient, the constraints' sparse Jacobian (structure and
    values), and the lower triangle of the Lagrangian's Hessian
    ``obj_factor ∇²f + Σ_i lagrange[i] ∇²c[i]`` (structure and values), computed as
    one sparse Hessian of ``x -> obj_factor f(x) + Σ lagrange * c(x)`` with
    ``obj_factor`` and ``lagrange`` extra arguments (so the structure is found once
    and new multipliers compile nothing new):

    >>> def f(x):                                              # doctest: +SKIP
    ...     return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]
    >>> def c(x):                                              # doctest: +SKIP
    ...     return jnp.stack([jnp.prod(x), jnp.sum(x**2)])
    >>> problem = diffops.ipopt_problem(f, [1.0, 5.0, 5.0, 1.0], c, lb=1.0, ub=5.0,
    ...                                 cl=[25.0, 40.0], cu=[np.inf, 40.0])
    >>> x, info = problem.solve(print_level=0, sb="yes")    # doctest: +SKIP
    >>> info["obj_val"]                                        # doctest: +SKIP
    17.01401...

    Args:
        objective: Scalar ``objective(x, *args)`` of ``x`` of shape ``(n,)``, written
            with the backend's framework.
        x0: Starting point of shape ``(n,)``: fixes ``n``, is where the structures
            are found (they hold at every point), and is where
            :meth:`~IpoptProblem.solve` starts unless given another.
        constraints: Array-valued ``constraints(x, *constraint_args)`` with values
            of any shape ``F`` (flattened to ``m = prod(F)`` constraints), or
            ``None``.
        lb: Lower bounds of ``x``: a scalar or shape ``(n,)``; ``None``: none.
        ub: Upper bounds of ``x``: a scalar or shape ``(n,)``; ``None``: none.
        cl: Lower bounds of the constraints: a scalar or shape ``(m,)``
            (``-np.inf``: none); required with ``constraints``.
        cu: Upper bounds of the constraints (``cl == cu``: an equality); required
            with ``constraints``.
        args: Extra arguments of the objective (data), undifferentiated.
        constraint_args: Extra arguments of the constraints.
        backend: Backend name (case-insensitive), default ``"jax"``.
        sparsity: ``"detect"`` (default; ``jax`` and ``jax_nojit``): the Jacobian's
            and the Hessian's structures are read from the functions, and their
            values computed with colored products. ``None``: dense derivatives and
            dense structures (every entry; any backend).
        prefetch: At a new point, evaluate the derivative with the value once
            IPOPT has asked for it (default ``True``: one evaluation per accepted
            point); ``False`` evaluates the value alone until the derivative is
            asked for at that point (cheaper for rejected trial points).
        **options: Backend options passed to the derivative functions.

    Returns:
        An :class:`IpoptProblem`: pass it to ``cyipopt.Problem`` as the problem
        object, or call its ``solve(x0=None, **ipopt_options)``.

    Raises:
        ValueError: For bounds ``cl``/``cu`` missing with constraints, or given
            without, or an unsupported ``sparsity``.
        ShapeMismatchError: For ``x0`` that is not a vector, or bounds of the wrong
            shape.
        NotCallableError: If a function is not callable.
        UnknownBackendError: If the backend name is unknown.
        BackendUnavailableError: If the backend is not installed.
    """
    return IpoptProblem(
        objective,
        x0,
        constraints,
        lb=lb,
        ub=ub,
        cl=cl,
        cu=cu,
        args=args,
        constraint_args=constraint_args,
        backend=backend,
        sparsity=sparsity,
        prefetch=prefetch,
        **options,
    )
