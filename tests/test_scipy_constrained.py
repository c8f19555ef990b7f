"""``scipy_constraint`` and sparse ``scipy_objective`` with SciPy's ``trust-constr``:
sparse Jacobians, the constraints' Hessian term as one sparse Hessian or as HVPs, one
evaluation per point, known optima of CUTEst problems and a hand-written one."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import pytest

import diffops
from _backends import require_backend
from _constrained_problems import (
    PROBLEMS,
    circles,
    circles_constraints,
    circles_objective,
    circles_solution,
    load,
)
from diffops.errors import ShapeMismatchError
from diffops.scipy import ScipyConstraint

optimize = pytest.importorskip("scipy.optimize")
sparse = pytest.importorskip("scipy.sparse")

# trust-constr stops once the gradient of the Lagrangian is below gtol, which exact
# second derivatives reach while the barrier parameter is still about 1e-5: its
# bias then shows in the objective (HS35: 6e-5 relative). Starting the barrier
# parameter small removes it.
TRUST_CONSTR = {
    "gtol": 1e-10,
    "xtol": 1e-10,
    "initial_barrier_parameter": 1e-8,
    "initial_barrier_tolerance": 1e-8,
    "maxiter": 1000,
}


class Recorder:
    """The constraint's callbacks, recording each distinct point SciPy asks at."""

    def __init__(self, constraint: Any):
        self.constraint = constraint
        self.points: set[bytes] = set()

    def _seen(self, x: np.ndarray) -> None:
        self.points.add(np.asarray(x, dtype=np.float64).tobytes())

    def fun(self, x: np.ndarray) -> np.ndarray:
        self._seen(x)
        return self.constraint.fun(x)

    def jac(self, x: np.ndarray) -> Any:
        self._seen(x)
        return self.constraint.jac(x)

    def hess(self, x: np.ndarray, v: np.ndarray) -> Any:
        self._seen(x)
        return self.constraint.hess(x, v)

    def wrapped(self) -> Any:
        c = self.constraint
        return optimize.NonlinearConstraint(
            self.fun, c.lb, c.ub, jac=self.jac, hess=self.hess
        )


def trust_constr(problem, objective, constraint, hessian: str = "matrix"):
    second = (
        {"hess": objective.hess} if hessian == "matrix" else {"hessp": objective.hessp}
    )
    bounds = None
    if np.isfinite(problem.lb).any() or np.isfinite(problem.ub).any():
        bounds = optimize.Bounds(problem.lb, problem.ub)
    with warnings.catch_warnings():
        # trust-constr warns that a problem with equalities only needs no barrier.
        warnings.simplefilter("ignore", UserWarning)
        return optimize.minimize(
            objective.fun,
            problem.x0,
            jac=objective.jac,
            constraints=[constraint],
            bounds=bounds,
            method="trust-constr",
            options=TRUST_CONSTR,
            **second,
        )


@pytest.mark.parametrize("hessian", ["matrix", "hvp"])
def test_hand_written_problem_reaches_its_known_solution(hessian):
    require_backend("jax")
    n = 40
    problem = circles(n)
    objective = diffops.scipy_objective(circles_objective, sparsity="detect")
    constraint = diffops.scipy_constraint(
        circles_constraints, problem.cl, problem.cu, hessian=hessian
    )
    callbacks = constraint.fun
    assert isinstance(callbacks, ScipyConstraint)
    recorder = Recorder(constraint)
    result = trust_constr(problem, objective, recorder.wrapped(), hessian)
    assert result.status == 1, result.message
    np.testing.assert_allclose(result.fun, problem.expected, rtol=1e-7)
    # The value pins x down only to about the square root of its own error.
    np.testing.assert_allclose(result.x, circles_solution(n), atol=1e-3)

    # The Jacobian is the bidiagonal one, from 2 colored products per point.
    jacobian = constraint.jac(result.x)
    assert isinstance(jacobian, sparse.csr_array)
    assert jacobian.shape == (n - 1, n)
    assert jacobian.nnz == 2 * (n - 1)
    assert callbacks.derivatives["jacobian_and_value"].coloring["colors"] == 2
    # One evaluation per distinct point: the value and the Jacobian together.
    evaluations = callbacks.evaluations
    point_evaluations = evaluations["value"] + evaluations["jacobian_and_value"]
    assert point_evaluations <= len(recorder.points) + 1
    naive = callbacks.calls["fun"] + callbacks.calls["jac"]
    assert point_evaluations < 0.75 * naive
    if hessian == "matrix":
        term = constraint.hess(result.x, np.ones(n - 1))
        assert isinstance(term, sparse.csr_array)
        assert term.nnz == n
        assert evaluations["hessian_grad_and_value"] > 0
    else:
        assert callbacks.hvp_products > 0
        assert "hessian_grad_and_value" not in evaluations


@pytest.mark.parametrize("hessian", ["matrix", "hvp"])
@pytest.mark.parametrize("name", PROBLEMS)
def test_cutest_problems_reach_their_known_optima(name, hessian):
    require_backend("jax")
    problem = load(name)
    objective = diffops.scipy_objective(problem.objective, sparsity="detect")
    constraint = diffops.scipy_constraint(
        problem.constraints, problem.cl, problem.cu, hessian=hessian
    )
    result = trust_constr(problem, objective, constraint, hessian)
    assert result.status in (1, 2), result.message
    assert result.constr_violation < 1e-8
    np.testing.assert_allclose(result.fun, problem.expected, rtol=1e-6)
    print(
        f"{name} {hessian}: {result.nit} iterations, f = {result.fun:.10g} "
        f"(known {problem.expected}), {constraint.fun.evaluations}"
    )


def dense_jacobian(func, x):
    jacobian, value = diffops.jacobian_and_value(func)(x)
    return np.reshape(jacobian, (np.size(value), x.size))


def weighted(func):
    def term(x, v):
        return (v * func(x)).sum()

    return term


@pytest.mark.parametrize("name", ["HS119", "HS117", "circles"])
def test_sparse_derivatives_equal_dense_ones(name):
    require_backend("jax")
    problem = circles(12) if name == "circles" else load(name)
    rng = np.random.default_rng(3)
    x = problem.x0 + 0.1 * rng.standard_normal(problem.x0.size)
    m = problem.cl.size
    v = rng.standard_normal(m)

    objective = diffops.scipy_objective(problem.objective, sparsity="detect")
    hessian = objective.hess(x)
    assert isinstance(hessian, sparse.csr_array)
    dense_hessian = diffops.hessian_grad_and_value(problem.objective)(x)[0]
    np.testing.assert_allclose(hessian.toarray(), dense_hessian, rtol=1e-12, atol=1e-12)

    constraint = diffops.scipy_constraint(problem.constraints, problem.cl, problem.cu)
    np.testing.assert_allclose(
        constraint.jac(x).toarray(),
        dense_jacobian(problem.constraints, x),
        rtol=1e-12,
        atol=1e-12,
    )
    term = diffops.hessian_grad_and_value(weighted(problem.constraints))(x, v)[0]
    np.testing.assert_allclose(
        constraint.hess(x, v).toarray(), term, rtol=1e-12, atol=1e-12
    )
    # Matrix-free: the operator's columns are the same matrix.
    operator = diffops.scipy_constraint(
        problem.constraints, problem.cl, problem.cu, hessian="hvp"
    ).hess(x, v)
    assert operator.shape == (x.size, x.size)
    columns = np.column_stack([operator @ e for e in np.eye(x.size)])
    np.testing.assert_allclose(columns, term, rtol=1e-12, atol=1e-12)
    p = rng.standard_normal(x.size)
    np.testing.assert_allclose(operator.rmatvec(p), term @ p, rtol=1e-12, atol=1e-12)


def circles_term_diagonal(v: np.ndarray) -> np.ndarray:
    # ∂²/∂x[j]² of Σ v[i] (x[i]² + x[i+1]²) = 2 v[j] + 2 v[j-1].
    diagonal = np.zeros(v.size + 1)
    diagonal[:-1] += 2 * v
    diagonal[1:] += 2 * v
    return diagonal


def test_new_multipliers_reuse_the_structure_and_the_plan():
    require_backend("jax")
    problem = circles(10)
    constraint = diffops.scipy_constraint(circles_constraints, problem.cl, problem.cu)
    callbacks = constraint.fun
    x = problem.x0
    first = constraint.hess(x, np.ones(9))
    derivative = callbacks.derivatives["hessian_grad_and_value"]
    plan = derivative.coloring
    assert plan["nnz"] == 10
    assert plan["colors"] == 1
    v = np.arange(9.0)
    second = constraint.hess(x, v)
    assert derivative.coloring == plan  # not detected or colored again
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_allclose(second.toarray(), np.diag(circles_term_diagonal(v)))
    # The same point and multipliers again (equal copies) cost nothing.
    before = callbacks.n_evaluations
    constraint.hess(x.copy(), v.copy())
    assert callbacks.n_evaluations == before
    # A changed multiplier is a new evaluation.
    v[0] = 5.0
    constraint.hess(x, v)
    assert callbacks.n_evaluations == before + 1


def bidiagonal(rows: int) -> np.ndarray:
    pattern = np.zeros((rows, rows + 1), dtype=bool)
    pattern[np.arange(rows), np.arange(rows)] = True
    pattern[np.arange(rows), np.arange(1, rows + 1)] = True
    return pattern


def test_given_jacobian_pattern_without_detection():
    # Without detection, a given Jacobian pattern P makes both matrices sparse:
    # the Hessian term gets the pattern of PᵀP (tridiagonal here, for a diagonal
    # true term: conservative, never missing an entry). (On torch, a given
    # pattern with extra arguments fails inside the backend: reported.)
    backend = "autograd"
    require_backend(backend)
    n = 12
    problem = circles(n)
    objective = diffops.scipy_objective(circles_objective, backend)
    constraint = diffops.scipy_constraint(
        circles_constraints,
        problem.cl,
        problem.cu,
        backend,
        sparsity=bidiagonal(n - 1),
    )
    rng = np.random.default_rng(5)
    x, v = rng.standard_normal(n), rng.standard_normal(n - 1)
    jacobian = constraint.jac(x)
    assert isinstance(jacobian, sparse.csr_array)
    assert jacobian.nnz == 2 * (n - 1)
    expected = np.zeros((n - 1, n))
    expected[np.arange(n - 1), np.arange(n - 1)] = 2 * x[:-1]
    expected[np.arange(n - 1), np.arange(1, n)] = 2 * x[1:]
    np.testing.assert_allclose(jacobian.toarray(), expected, rtol=1e-13)
    term = constraint.hess(x, v)
    assert isinstance(term, sparse.csr_array)
    assert term.nnz == 3 * n - 2
    np.testing.assert_allclose(term.toarray(), np.diag(circles_term_diagonal(v)))

    result = trust_constr(problem, objective, constraint)
    assert result.status == 1, result.message
    np.testing.assert_allclose(result.fun, problem.expected, rtol=1e-7)


@pytest.mark.parametrize("backend", ["torch", "autograd"])
def test_dense_on_other_backends_with_sparsity_none(backend):
    require_backend(backend)
    problem = circles(6)
    constraint = diffops.scipy_constraint(
        circles_constraints, problem.cl, problem.cu, backend, sparsity=None
    )
    x, v = np.linspace(0.1, 0.6, 6), np.arange(1.0, 6.0)
    jacobian = constraint.jac(x)
    assert type(jacobian) is np.ndarray
    assert jacobian.shape == (5, 6)
    assert jacobian.flags.writeable
    term = constraint.hess(x, v)
    assert type(term) is np.ndarray
    np.testing.assert_allclose(term, np.diag(circles_term_diagonal(v)))


def test_values_are_fresh_copies_and_shapes_are_checked():
    require_backend("jax")
    problem = circles(6)
    constraint = diffops.scipy_constraint(circles_constraints, problem.cl, problem.cu)
    x = np.linspace(0.1, 0.6, 6)
    value = constraint.fun(x)
    value[:] = 0.0
    np.testing.assert_allclose(constraint.fun(x), x[:-1] ** 2 + x[1:] ** 2)
    jacobian = constraint.jac(x)
    jacobian.data[:] = 0.0
    assert np.all(constraint.jac(x).data != 0.0)
    assert constraint.fun.n_evaluations == 2  # the value, then with the Jacobian
    with pytest.raises(ShapeMismatchError, match=r"multipliers v of hess"):
        constraint.hess(x, np.ones(6))
    with pytest.raises(ValueError, match=r"hessian='dense' is not one of"):
        diffops.scipy_constraint(circles_constraints, hessian="dense")


def test_prefetch_false_evaluates_the_value_alone_until_jac():
    require_backend("jax")
    problem = circles(6)
    constraint = diffops.scipy_constraint(
        circles_constraints, problem.cl, problem.cu, prefetch=False
    )
    callbacks = constraint.fun
    x = np.linspace(0.1, 0.6, 6)
    constraint.jac(x)
    constraint.fun(x + 1)
    assert callbacks.evaluations["value"] == 1
    assert callbacks.evaluations["jacobian_and_value"] == 1


def test_sparse_objective_hessian_serves_hessp():
    require_backend("jax")
    objective = diffops.scipy_objective(circles_objective, sparsity="detect")
    x = np.linspace(-1.0, 1.0, 8)
    hessian = objective.hess(x)
    assert isinstance(hessian, sparse.csr_array)
    assert hessian.nnz == 3 * 8 - 2
    p = np.arange(8.0)
    before = objective.n_evaluations
    np.testing.assert_allclose(objective.hessp(x, p), hessian @ p)
    assert objective.n_evaluations == before
    assert objective.hvp_products == 0
    hessian.data[:] = 0.0  # a copy: the stored Hessian is unchanged
    assert objective.hess(x).count_nonzero() > 0
    assert "sparsity='detect'" in repr(objective)


def test_constraint_and_objective_pickle_as_their_recipes():
    require_backend("jax")
    problem = circles(6)
    constraint = diffops.scipy_constraint(
        circles_constraints, problem.cl, problem.cu, hessian="hvp"
    )
    objective = diffops.scipy_objective(circles_objective, sparsity="detect")
    x = np.linspace(0.1, 0.6, 6)
    constraint.fun(x)
    objective.hess(x)
    constraint_copy, objective_copy = pickle.loads(
        pickle.dumps((constraint, objective))
    )
    assert constraint_copy.fun.n_evaluations == 0
    assert constraint_copy.fun.hessian == "hvp"
    np.testing.assert_array_equal(constraint_copy.ub, constraint.ub)
    np.testing.assert_allclose(constraint_copy.fun(x), constraint.fun(x))
    np.testing.assert_allclose(
        objective_copy.hess(x).toarray(), objective.hess(x).toarray()
    )
    assert repr(constraint_copy.fun).startswith(
        "scipy_constraint(circles_constraints, backend='jax'"
    )
