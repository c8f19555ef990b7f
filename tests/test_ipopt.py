"""``ipopt_problem``: cyipopt's problem interface with derivatives from diffops.

The structures and values are checked against dense derivatives without IPOPT; the
solves need ``cyipopt``. Without it they are skipped, unless it is required:
``DIFFOPS_REQUIRE_IPOPT=1`` requires it, ``=0`` never does, and unset it is required
in CI (``CI=true``) on the Pythons the ``dev`` extra installs ``cyipopt-wheels`` for
(3.10 to 3.13).
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from typing import Any

import numpy as np
import pytest

import diffops
from _backends import in_ci, require_backend
from _constrained_problems import (
    PROBLEMS,
    circles,
    circles_solution,
    hs071,
    load,
)
from diffops.errors import ShapeMismatchError

REQUIRE_ENV = "DIFFOPS_REQUIRE_IPOPT"


def ipopt_required() -> bool:
    setting = os.environ.get(REQUIRE_ENV, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    return in_ci() and sys.version_info < (3, 14)


def require_cyipopt() -> Any:
    """``cyipopt``, or a skip (a failure where it is required)."""
    if importlib.util.find_spec("cyipopt") is None:
        msg = "cyipopt is not installed (pip install -e .[ipopt])"
        if ipopt_required():
            pytest.fail(f"{msg}, and it is required here ({REQUIRE_ENV}, CI)")
        pytest.skip(msg)
    import cyipopt

    return cyipopt


QUIET = {"print_level": 0, "sb": "yes"}


def build(problem, **options) -> diffops.IpoptProblem:
    return diffops.ipopt_problem(
        problem.objective,
        problem.x0,
        problem.constraints,
        lb=problem.lb,
        ub=problem.ub,
        cl=problem.cl,
        cu=problem.cu,
        **options,
    )


def dense_jacobian(problem, x):
    jacobian, value = diffops.jacobian_and_value(problem.constraints)(x)
    return np.reshape(jacobian, (np.size(value), x.size))


def dense_lagrangian_hessian(problem, x, lagrange, obj_factor):
    hessian = obj_factor * diffops.hessian_grad_and_value(problem.objective)(x)[0]

    def weighted(y, v):
        return (v * problem.constraints(y)).sum()

    term = diffops.hessian_grad_and_value(weighted)(x, lagrange)[0]
    return hessian + term


def problem_by_name(name: str):
    return {"circles": lambda: circles(10), "hs071": hs071}.get(
        name, lambda: load(name)
    )()


@pytest.mark.parametrize("sparsity", ["detect", None])
@pytest.mark.parametrize("name", ["HS119", "HS117", "HS100", "circles", "hs071"])
def test_structures_and_values_match_dense_derivatives(name, sparsity):
    require_backend("jax")
    problem = problem_by_name(name)
    ipopt = build(problem, sparsity=sparsity)
    n, m = problem.x0.size, problem.cl.size
    assert (ipopt.n, ipopt.m) == (n, m)
    rng = np.random.default_rng(7)
    x = problem.x0 + 0.1 * rng.standard_normal(n)
    lagrange, obj_factor = rng.standard_normal(m), 0.7

    rows, cols = ipopt.jacobianstructure()
    assert rows.dtype == cols.dtype == np.int64
    # Row-major order without duplicates, every structural entry in range.
    order = np.lexsort((cols, rows))
    np.testing.assert_array_equal(order, np.arange(rows.size))
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == rows.size
    assert rows.min() >= 0
    assert rows.max() < m
    assert cols.max() < n
    dense = dense_jacobian(problem, x)
    values = ipopt.jacobian(x)
    assert values.shape == rows.shape
    np.testing.assert_allclose(values, dense[rows, cols], rtol=1e-12, atol=1e-12)
    rebuilt = np.zeros((m, n))
    rebuilt[rows, cols] = values
    np.testing.assert_allclose(rebuilt, dense, rtol=1e-12, atol=1e-12)  # none missed

    rows, cols = ipopt.hessianstructure()
    assert np.all(rows >= cols)  # the lower triangle only, as IPOPT requires
    order = np.lexsort((cols, rows))
    np.testing.assert_array_equal(order, np.arange(rows.size))
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == rows.size
    dense = dense_lagrangian_hessian(problem, x, lagrange, obj_factor)
    values = ipopt.hessian(x, lagrange, obj_factor)
    np.testing.assert_allclose(values, dense[rows, cols], rtol=1e-12, atol=1e-12)
    rebuilt = np.zeros((n, n))
    rebuilt[rows, cols] = values
    np.testing.assert_allclose(
        np.tril(dense), rebuilt, rtol=1e-12, atol=1e-12
    )  # none missed
    if sparsity is None:
        assert rows.size == n * (n + 1) // 2

    np.testing.assert_allclose(
        ipopt.objective(x),
        diffops.wrap_function(problem.objective, "jax")(x),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        ipopt.gradient(x),
        diffops.grad_and_value(problem.objective)(x)[0],
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        ipopt.constraints(x),
        np.ravel(diffops.wrap_function(problem.constraints, "jax")(x)),
        rtol=1e-13,
        atol=1e-13,
    )


def test_sparse_structures_are_smaller_than_dense_ones():
    require_backend("jax")
    n = 40
    ipopt = build(circles(n))
    rows, _ = ipopt.jacobianstructure()
    assert rows.size == 2 * (n - 1)  # bidiagonal
    rows, cols = ipopt.hessianstructure()
    assert rows.size == 2 * n - 1  # tridiagonal, lower triangle
    assert set((rows - cols).tolist()) == {0, 1}
    hessian = ipopt.derivatives["hessian_grad_and_value"]
    assert hessian.coloring["mode"] == "symmetric"
    assert hessian.coloring["colors"] <= 3


def test_new_multipliers_reuse_the_plan_and_a_point_costs_one_evaluation():
    require_backend("jax")
    problem = circles(10)
    ipopt = build(problem)
    ipopt.hessianstructure()
    hessian = ipopt.derivatives["hessian_grad_and_value"]
    plan = hessian.coloring
    x = np.linspace(0.1, 0.5, 10)
    for k in range(3):
        ipopt.hessian(x, np.full(9, float(k)), 1.0 + k)
    assert hessian.coloring == plan  # never detected or colored again
    # Once IPOPT has asked for derivatives, a new point's value and derivative
    # cost one evaluation.
    ipopt.gradient(problem.x0)
    ipopt.jacobian(problem.x0)
    before = dict(ipopt.evaluations)
    ipopt.objective(x)
    ipopt.gradient(x)
    ipopt.constraints(x)
    ipopt.jacobian(x)
    after = ipopt.evaluations
    spent = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert spent == {"grad_and_value": 1, "jacobian_and_value": 1}
    with pytest.raises(ShapeMismatchError, match=r"multipliers have 3 entries"):
        ipopt.hessian(x, np.ones(3), 1.0)


def test_bad_arguments_name_the_fix():
    require_backend("jax")
    problem = circles(4)
    with pytest.raises(ValueError, match=r"pass cl and cu"):
        diffops.ipopt_problem(problem.objective, problem.x0, problem.constraints)
    with pytest.raises(ValueError, match=r"pass the constraints function too"):
        diffops.ipopt_problem(problem.objective, problem.x0, cl=0.0)
    with pytest.raises(ShapeMismatchError, match=r"vector of shape \(n,\)"):
        diffops.ipopt_problem(problem.objective, np.zeros((2, 2)))
    with pytest.raises(ShapeMismatchError, match=r"bounds lb have shape \(3,\)"):
        diffops.ipopt_problem(problem.objective, problem.x0, lb=np.zeros(3))
    with pytest.raises(ShapeMismatchError, match=r"bounds cu have shape \(4,\)"):
        diffops.ipopt_problem(
            problem.objective, problem.x0, problem.constraints, cl=0.0, cu=np.ones(4)
        )
    with pytest.raises(ValueError, match=r"sparsity='detect' or None"):
        diffops.ipopt_problem(
            problem.objective, problem.x0, sparsity=np.ones((4, 4), dtype=bool)
        )


def test_missing_cyipopt_is_an_import_error_naming_the_extra(monkeypatch):
    require_backend("jax")
    monkeypatch.setitem(sys.modules, "cyipopt", None)  # import cyipopt fails
    ipopt = build(circles(4))
    with pytest.raises(ImportError, match=r"pip install diffops\[ipopt\]"):
        ipopt.solve()


def test_pickles_as_its_recipe():
    require_backend("jax")
    ipopt = build(circles(6))
    ipopt.hessianstructure()
    copy = pickle.loads(pickle.dumps(ipopt))
    assert copy.evaluations["hessian_grad_and_value"] == 0
    np.testing.assert_array_equal(copy.cu, ipopt.cu)
    for a, b in zip(copy.hessianstructure(), ipopt.hessianstructure(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert repr(copy) == repr(ipopt)
    assert repr(ipopt).startswith("ipopt_problem(circles_objective, n=6")


# Solving with IPOPT ------------------------------------------------------------


class Recorder:
    """The problem's interface for cyipopt, recording the distinct points."""

    def __init__(self, problem: diffops.IpoptProblem):
        self.problem = problem
        self.points: set[bytes] = set()

    def _seen(self, x: np.ndarray) -> None:
        self.points.add(np.asarray(x, dtype=np.float64).tobytes())

    def objective(self, x):
        self._seen(x)
        return self.problem.objective(x)

    def gradient(self, x):
        self._seen(x)
        return self.problem.gradient(x)

    def constraints(self, x):
        self._seen(x)
        return self.problem.constraints(x)

    def jacobian(self, x):
        self._seen(x)
        return self.problem.jacobian(x)

    def jacobianstructure(self):
        return self.problem.jacobianstructure()

    def hessian(self, x, lagrange, obj_factor):
        self._seen(x)
        return self.problem.hessian(x, lagrange, obj_factor)

    def hessianstructure(self):
        return self.problem.hessianstructure()


def test_hs071_through_cyipopt_problem_directly():
    # cyipopt's own introductory example, with the problem object passed to
    # cyipopt.Problem as it is.
    require_backend("jax")
    cyipopt = require_cyipopt()
    problem = hs071()
    ipopt = build(problem)
    recorder = Recorder(ipopt)
    nlp = cyipopt.Problem(
        n=4,
        m=2,
        problem_obj=recorder,
        lb=problem.lb,
        ub=problem.ub,
        cl=problem.cl,
        cu=problem.cu,
    )
    for name, value in {**QUIET, "tol": 1e-10}.items():
        nlp.add_option(name, value)
    x, info = nlp.solve(problem.x0)
    assert info["status"] == 0, info["status_msg"]
    np.testing.assert_allclose(info["obj_val"], problem.expected, rtol=1e-9)
    np.testing.assert_allclose(x, [1.0, 4.74299963, 3.82114998, 1.37940829], rtol=1e-6)
    # One evaluation per point for the objective and for the constraints: values
    # and derivatives share it (plus one at x0 for each structure).
    evaluations = ipopt.evaluations
    points = len(recorder.points)
    assert evaluations["objective"] + evaluations["grad_and_value"] <= points
    assert evaluations["constraints"] + evaluations["jacobian_and_value"] <= points + 1
    naive = ipopt.calls["objective"] + ipopt.calls["gradient"]
    assert evaluations["objective"] + evaluations["grad_and_value"] < 0.75 * naive


@pytest.mark.parametrize("sparsity", ["detect", None])
@pytest.mark.parametrize("name", PROBLEMS)
def test_cutest_problems_reach_their_known_optima(name, sparsity):
    require_backend("jax")
    require_cyipopt()
    problem = load(name)
    ipopt = build(problem, sparsity=sparsity)
    _x, info = ipopt.solve(tol=1e-10, **QUIET)
    assert info["status"] == 0, info["status_msg"]
    np.testing.assert_allclose(info["obj_val"], problem.expected, rtol=1e-6)
    violation = np.maximum(problem.cl - info["g"], info["g"] - problem.cu)
    assert violation.max() < 1e-8
    print(
        f"{name} sparsity={sparsity}: f = {info['obj_val']:.10g} (known "
        f"{problem.expected}), {ipopt.calls['hessian']} Hessians, "
        f"{ipopt.jacobianstructure()[0].size} Jacobian and "
        f"{ipopt.hessianstructure()[0].size} Hessian entries"
    )


def test_hand_written_problem_reaches_its_known_solution():
    require_backend("jax")
    require_cyipopt()
    n = 40
    problem = circles(n)
    ipopt = build(problem)
    x, info = ipopt.solve(tol=1e-10, **QUIET)
    assert info["status"] == 0, info["status_msg"]
    np.testing.assert_allclose(info["obj_val"], problem.expected, rtol=1e-8)
    # The value pins x down only to about the square root of its own error.
    np.testing.assert_allclose(x, circles_solution(n), atol=1e-5)
    # Solving again from another start reuses everything built.
    hessian = ipopt.derivatives["hessian_grad_and_value"]
    plan = hessian.coloring
    x, info = ipopt.solve(np.zeros(n), tol=1e-10, **QUIET)
    assert info["status"] == 0
    np.testing.assert_allclose(x, circles_solution(n), atol=1e-5)
    assert hessian.coloring == plan


def test_bounds_only_and_another_backend():
    # No constraints (m = 0): IPOPT gets empty constraint structures. The dense
    # path works on any backend.
    require_backend("torch")
    require_cyipopt()

    def rosenbrock(x):
        return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()

    ipopt = diffops.ipopt_problem(
        rosenbrock, np.full(6, -1.0), lb=-2.0, ub=0.5, backend="torch", sparsity=None
    )
    assert ipopt.m == 0
    rows, cols = ipopt.jacobianstructure()
    assert rows.size == cols.size == 0
    x, info = ipopt.solve(tol=1e-10, **QUIET)
    assert info["status"] == 0, info["status_msg"]
    # With x[i] <= 0.5 the chain settles on the bound: x = (0.5, 0.25 + …): check
    # against SciPy's L-BFGS-B on the same bounds.
    optimize = pytest.importorskip("scipy.optimize")
    objective = diffops.scipy_objective(rosenbrock, "torch")
    reference = optimize.minimize(
        objective.fun,
        np.full(6, -1.0),
        jac=objective.jac,
        bounds=[(-2.0, 0.5)] * 6,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12},
    )
    np.testing.assert_allclose(info["obj_val"], reference.fun, rtol=1e-7)
    np.testing.assert_allclose(x, reference.x, atol=1e-5)
