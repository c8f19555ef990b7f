"""``diffops.scipy.scipy_objective``: SciPy's optimisers with one model evaluation
per point, Hessian-vector products that never form the Hessian."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _backends import require_backend
from diffops.scipy import ScipyObjective, scipy_objective

optimize = pytest.importorskip("scipy.optimize")

# SciPy's documentation start for the 5-d Rosenbrock function (the start
# [-1.2, 1, -1.2, 1, ...] leads to the local minimum near (-1, 1, 1, 1, 1)).
X0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])


def rosen(x: Any) -> Any:
    """``Σ 100 (x[i+1] - x[i]²)² + (1 - x[i])²``: every framework's arrays slice."""
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def rosen_grad(x: np.ndarray) -> np.ndarray:
    u = x[1:] - x[:-1] ** 2
    grad = np.zeros_like(x)
    grad[:-1] = -400 * x[:-1] * u - 2 * (1 - x[:-1])
    grad[1:] += 200 * u
    return grad


def rosen_hessian(x: np.ndarray) -> np.ndarray:
    hessian = np.zeros((x.size, x.size))
    i = np.arange(x.size - 1)
    hessian[i, i] = 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    hessian[i + 1, i + 1] += 200
    hessian[i, i + 1] = hessian[i + 1, i] = -400 * x[:-1]
    return hessian


def weighted_rosen(x: Any, weights: Any) -> Any:
    return (weights * (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)).sum()


BACKENDS = ["jax", "autograd", "torch", "symnum"]
OPTIONS = {"symnum": {"arg_shape": (5,)}}


class PointRecorder:
    """Wraps the objective's methods to record every distinct point SciPy asks at
    (an oracle for the evaluation count independent of the objective's cache)."""

    def __init__(self, objective: ScipyObjective):
        self.objective = objective
        self.points: set[bytes] = set()
        self.hessp_points: set[bytes] = set()

    def _seen(self, x: np.ndarray) -> None:
        self.points.add(np.asarray(x, dtype=np.float64).tobytes())

    def fun(self, x: np.ndarray) -> float:
        self._seen(x)
        return self.objective.fun(x)

    def jac(self, x: np.ndarray) -> np.ndarray:
        self._seen(x)
        return self.objective.jac(x)

    def fun_and_jac(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self._seen(x)
        return self.objective.fun_and_jac(x)

    def hess(self, x: np.ndarray) -> np.ndarray:
        self._seen(x)
        return self.objective.hess(x)

    def hessp(self, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        self._seen(x)
        self.hessp_points.add(np.asarray(x, dtype=np.float64).tobytes())
        return self.objective.hessp(x, p)


def minimize(method: str, recorder: PointRecorder, *, jac_true: bool = False):
    # Tight tolerances, so the result can be compared with the minimum at 1.
    tolerance = {"Newton-CG": "xtol"}.get(method, "gtol")
    kwargs: dict[str, Any] = {"options": {tolerance: 1e-10}}
    if method == "trust-exact":
        kwargs["hess"] = recorder.hess
    elif method in ("Newton-CG", "trust-krylov", "trust-ncg"):
        kwargs["hessp"] = recorder.hessp
    if jac_true:
        return optimize.minimize(
            recorder.fun_and_jac, X0, jac=True, method=method, **kwargs
        )
    return optimize.minimize(
        recorder.fun, X0, jac=recorder.jac, method=method, **kwargs
    )


@pytest.mark.parametrize("method", ["trust-exact", "Newton-CG", "trust-krylov"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_rosenbrock_one_evaluation_per_point(backend, method):
    require_backend(backend)
    objective = scipy_objective(rosen, backend, **OPTIONS.get(backend, {}))
    recorder = PointRecorder(objective)
    result = minimize(method, recorder)
    assert result.success, result.message
    np.testing.assert_allclose(result.x, np.ones(5), atol=1e-6)

    calls = objective.calls
    evaluations = objective.evaluations
    # One evaluation per distinct point, plus one at x0: SciPy asks for the value
    # and gradient there before it first asks for second-order information.
    assert objective.n_evaluations == len(recorder.points) + 1
    assert evaluations["grad_and_value"] == 1
    # Evaluating once per callback would cost this many:
    naive = sum(calls.values())
    assert objective.n_evaluations < naive / 2
    if method == "trust-exact":
        assert calls["hessp"] == evaluations["hvp_grad_and_value"] == 0
        assert evaluations["hessian_grad_and_value"] == len(recorder.points)
    else:
        assert calls["hess"] == evaluations["hessian_grad_and_value"] == 0
        assert objective.hvp_products == calls["hessp"] > 0
        assert evaluations["hvp_grad_and_value"] == len(recorder.points)
    print(
        f"{backend} {method}: {len(recorder.points)} points, {calls} -> "
        f"{evaluations} (naive {naive}), {objective.hvp_products} HVPs"
    )


@pytest.mark.parametrize("method", ["trust-krylov", "trust-exact", "BFGS"])
def test_jac_true_form(method):
    require_backend("jax")
    objective = scipy_objective(rosen)
    recorder = PointRecorder(objective)
    result = minimize(method, recorder, jac_true=True)
    assert result.success, result.message
    np.testing.assert_allclose(result.x, np.ones(5), atol=1e-6)
    assert objective.calls["fun_and_jac"] > 0
    assert objective.calls["fun"] == objective.calls["jac"] == 0
    extra = 0 if method == "BFGS" else 1  # BFGS never asks for second order
    assert objective.n_evaluations == len(recorder.points) + extra


def test_prefetch_false_evaluates_only_what_is_asked():
    require_backend("jax")
    objective = scipy_objective(rosen, prefetch=False)
    recorder = PointRecorder(objective)
    result = minimize("trust-krylov", recorder)
    assert result.success, result.message
    evaluations = objective.evaluations
    # Every point gets its value and gradient; only those where SciPy asks for
    # products (not the rejected trial points) get an HVP evaluation too.
    assert evaluations["grad_and_value"] == len(recorder.points)
    assert evaluations["hvp_grad_and_value"] == len(recorder.hessp_points)
    assert len(recorder.hessp_points) < len(recorder.points)


@pytest.mark.parametrize("backend", ["jax", "torch", "autograd"])
def test_values_match_closed_forms(backend):
    require_backend(backend)
    objective = scipy_objective(rosen, backend)
    x = np.random.default_rng(0).standard_normal(5)
    p = np.random.default_rng(1).standard_normal(5)
    hessian = rosen_hessian(x)
    np.testing.assert_allclose(objective.fun(x), rosen(x), rtol=1e-13)
    np.testing.assert_allclose(objective.jac(x), rosen_grad(x), rtol=1e-12)
    np.testing.assert_allclose(objective.hessp(x, p), hessian @ p, rtol=1e-12)
    np.testing.assert_allclose(objective.hess(x), hessian, rtol=1e-12)
    # With the Hessian stored at x, products need neither a model evaluation nor
    # an HVP.
    before = (objective.n_evaluations, objective.hvp_products)
    np.testing.assert_allclose(objective.hessp(x, 2 * p), 2 * hessian @ p, rtol=1e-12)
    assert (objective.n_evaluations, objective.hvp_products) == before
    fun, jac = objective.fun_and_jac(x)
    assert type(fun) is float
    np.testing.assert_allclose(jac, rosen_grad(x), rtol=1e-12)


def test_scipy_cannot_corrupt_the_cache_and_reused_arrays_are_compared_by_value():
    require_backend("jax")
    objective = scipy_objective(rosen)
    x = np.array([0.5, -0.3, 1.1, 0.2, 0.9])
    expected_grad = rosen_grad(x)
    grad = objective.jac(x)
    assert grad.flags.writeable  # jax results are read-only views: this is a copy
    grad[:] = 0.0
    np.testing.assert_allclose(objective.jac(x), expected_grad, rtol=1e-12)
    hessian = objective.hess(x)
    hessian[:] = 0.0
    np.testing.assert_allclose(objective.hess(x), rosen_hessian(x), rtol=1e-12)
    product = objective.hessp(x, np.ones(5))
    assert product.flags.writeable
    assert objective.n_evaluations == 2  # grad_and_value, then the Hessian upgrade

    # SciPy reuses its arrays: the same array, changed in place, is a new point.
    x[0] = 0.7
    np.testing.assert_allclose(objective.jac(x), rosen_grad(x), rtol=1e-12)
    assert objective.n_evaluations == 3
    # An equal copy is the same point.
    objective.fun(x.copy())
    assert objective.n_evaluations == 3


def test_trial_point_rejected_then_back_costs_nothing():
    # Trust-region methods evaluate a trial point, and after rejecting it ask for
    # more products at the current point: two points are kept.
    require_backend("jax")
    objective = scipy_objective(rosen)
    x, trial, third = np.zeros(5), np.full(5, 0.5), np.full(5, 2.0)
    objective.hessp(x, np.ones(5))
    objective.fun(trial)
    objective.hessp(x, np.ones(5))
    assert objective.n_evaluations == 2
    objective.fun(third)  # trial, the least recently used of three, is dropped
    objective.hessp(x, np.ones(5))
    assert objective.n_evaluations == 3
    objective.hessp(trial, np.ones(5))
    assert objective.evaluations == {
        "grad_and_value": 0,
        "hvp_grad_and_value": 4,
        "hessian_grad_and_value": 0,
    }


def test_extra_arguments_go_to_the_objective_not_to_minimize():
    require_backend("jax")
    weights = np.linspace(1.0, 2.0, 4)
    objective = scipy_objective(weighted_rosen, args=(weights,))
    result = optimize.minimize(
        objective.fun, X0, jac=objective.jac, hessp=objective.hessp, method="trust-ncg"
    )
    assert result.success, result.message
    np.testing.assert_allclose(result.x, np.ones(5), atol=1e-6)
    with pytest.raises(TypeError, match=r"scipy_objective\(func, args=...\)"):
        optimize.minimize(objective.fun, X0, args=(weights,), method="Nelder-Mead")


def test_pickles_as_its_recipe():
    require_backend("jax")
    objective = scipy_objective(rosen, prefetch=False)
    objective.fun(X0)
    copy = pickle.loads(pickle.dumps(objective))
    assert copy.prefetch is False
    assert copy.n_evaluations == 0  # no cache, no counts
    assert copy.fun(X0) == objective.fun(X0)
    assert "scipy_objective(rosen, backend='jax'" in repr(copy)


def test_import_diffops_scipy_does_not_import_scipy():
    code = (
        "import sys, diffops, diffops.scipy\n"
        "print([m for m in ('scipy', 'jax', 'torch') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def chained_rosen(x: Any) -> Any:
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def test_trust_krylov_in_ten_thousand_dimensions_never_forms_the_hessian():
    # The Hessian would be 10⁴ × 10⁴ float64 = 800 MB; hessp never forms it.
    require_backend("jax")
    d = 10_000
    objective = scipy_objective(chained_rosen)
    recorder = PointRecorder(objective)
    result = optimize.minimize(
        recorder.fun,
        np.full(d, 0.5),
        jac=recorder.jac,
        hessp=recorder.hessp,
        method="trust-krylov",
    )
    assert result.success, result.message
    np.testing.assert_allclose(result.x, np.ones(d), atol=1e-6)
    assert objective.calls["hess"] == 0
    assert objective.evaluations["hessian_grad_and_value"] == 0
    assert objective.n_evaluations == len(recorder.points) + 1
    assert objective.hvp_products == objective.calls["hessp"] > 0


def test_example_script_runs():
    require_backend("jax")
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, str(root / "examples" / "scipy_optimize.py"), "--dim", "2000"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "d=2000 trust-krylov" in result.stdout
    assert "was never formed" in result.stdout
