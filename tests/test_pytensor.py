"""``diffops.pytensor.pytensor_op``: functions written in JAX, PyTorch or Autograd as
PyTensor Ops with gradients, inside a PyMC model sampled with NUTS."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _backends import require_backend

pytensor = pytest.importorskip("pytensor")
pt = pytest.importorskip("pytensor.tensor")

from diffops.pytensor import pytensor_op  # noqa: E402

# y: 20 observations of a 2-d Gaussian with unknown mean theta, identity covariance.
Y = np.random.default_rng(0).standard_normal((20, 2)) + np.array([1.0, -0.5])
THETA = np.array([0.3, -0.2])


def framework(backend: str) -> Any:
    require_backend(backend)
    if backend == "jax":
        import jax.numpy as np_like
    elif backend == "torch":
        import torch as np_like
    else:
        import autograd.numpy as np_like
    return np_like


def gaussian_loglike(backend: str):
    """``log p(y | theta) = -½ Σ_i |y_i - theta|²`` (up to a constant)."""
    xp = framework(backend)

    def loglike(theta, y):
        if backend == "torch":
            y = xp.as_tensor(y)
        return -0.5 * ((y - theta) ** 2).sum()

    return loglike


def loglike_grad(theta: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (y - theta).sum(axis=0)


def cubic_means(backend: str):
    """An array-valued function: ``theta -> [θ0³, θ0 θ1, sin(θ1)]``."""
    xp = framework(backend)

    def means(theta):
        return xp.stack([theta[0] ** 3, theta[0] * theta[1], xp.sin(theta[1])])

    return means


BACKENDS = ["jax", "torch", "autograd"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_value_gradient_and_hessian_match_closed_forms(backend):
    op = pytensor_op(gaussian_loglike(backend), backend)
    theta = pt.dvector("theta")
    value = op(theta, Y)
    grad = pytensor.grad(value, theta)
    hessian = pytensor.gradient.hessian(value, theta)
    f = pytensor.function([theta], [value, grad, hessian])
    v, g, h = f(THETA)
    assert v.dtype == g.dtype == h.dtype == np.float64
    np.testing.assert_allclose(v, -0.5 * np.sum((Y - THETA) ** 2), rtol=1e-13)
    np.testing.assert_allclose(g, loglike_grad(THETA, Y), rtol=1e-12)
    np.testing.assert_allclose(h, -len(Y) * np.eye(2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_verify_grad_scalar(backend):
    op = pytensor_op(gaussian_loglike(backend), backend)
    pytensor.gradient.verify_grad(
        lambda theta: op(theta, Y), [THETA], rng=np.random.default_rng(1)
    )


def wiggly(backend: str):
    """A scalar function with a non-constant Hessian: ``Σ sin(θ) θ² + θ0 θ1³``."""
    xp = framework(backend)

    def f(theta):
        return (xp.sin(theta) * theta**2).sum() + theta[0] * theta[1] ** 3

    return f


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_derivatives_are_hessian_vector_products(backend):
    op = pytensor_op(wiggly(backend), backend)
    theta = pt.dvector("theta")
    grad = pytensor.grad(op(theta), theta)
    hessian = pytensor.function([theta], pytensor.gradient.hessian(op(theta), theta))
    t0, t1 = THETA
    diagonal = [(2 - t**2) * np.sin(t) + 4 * t * np.cos(t) for t in THETA] + np.array(
        [0.0, 6 * t0 * t1]
    )
    expected = np.diag(diagonal) + 3 * t1**2 * (1 - np.eye(2))
    np.testing.assert_allclose(hessian(THETA), expected, rtol=1e-12)
    # Its gradient graph goes through the Hessian-vector product Op.
    second = pytensor.function([theta], pytensor.grad(grad.sum(), theta))
    names = {type(n.op).__name__ for n in second.maker.fgraph.toposort()}
    assert "HessianVectorProductOp" in names
    pytensor.gradient.verify_grad(
        lambda t: pytensor.grad(op(t), t), [THETA], rng=np.random.default_rng(3)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_verify_grad_array_valued(backend):
    op = pytensor_op(cubic_means(backend), backend, output_ndim=1)
    pytensor.gradient.verify_grad(op, [THETA], rng=np.random.default_rng(2))
    theta = pt.dvector("theta")
    out = op(theta)
    assert out.type.ndim == 1
    f = pytensor.function([theta], pytensor.gradient.jacobian(out, theta))
    t0, t1 = THETA
    expected = [[3 * t0**2, 0.0], [t1, t0], [0.0, np.cos(t1)]]
    np.testing.assert_allclose(f(THETA), expected, rtol=1e-12, atol=1e-15)


def test_value_and_gradient_cost_one_evaluation():
    # PyMC compiles the log-density and its gradient into one function: both come
    # from one node, so the model runs once per point (counted on Autograd, which
    # calls the function on every evaluation).
    require_backend("autograd")
    calls = []
    loglike = gaussian_loglike("autograd")

    def counted(theta, y):
        calls.append(1)
        return loglike(theta, y)

    op = pytensor_op(counted, "autograd")
    theta = pt.dvector("theta")
    value = op(theta, Y) + pt.sum(theta**2)  # something else in the graph too
    f = pytensor.function([theta], [value, pytensor.grad(value, theta)])
    nodes = [n for n in f.maker.fgraph.toposort() if n.op is op]
    assert len(nodes) == 1
    f(THETA)
    f(THETA + 1)
    assert len(calls) == 2


def test_outputs_are_float64_writable_and_survive_inplace_rewrites():
    # PyTensor may reuse an Op's output buffer in place (e.g. for `op(x) + 1`):
    # outputs are owned copies, never JAX's read-only buffers.
    op = pytensor_op(gaussian_loglike("jax"), "jax")
    theta = pt.vector("theta", dtype="float32")  # cast to float64 in the graph
    value = op(theta, Y)
    grad = pytensor.grad(value, theta)
    f = pytensor.function([theta], [value + 1.0, 2.0 * grad + 1.0, value])
    a, b, c = f(THETA.astype(np.float32))
    assert a.dtype == c.dtype == np.float64
    np.testing.assert_allclose(a, c + 1.0, rtol=1e-13)
    theta32 = THETA.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(b, 2 * loglike_grad(theta32, Y) + 1, rtol=1e-6)


def test_data_arguments_are_not_differentiated():
    require_backend("jax")
    op = pytensor_op(gaussian_loglike("jax"), "jax")
    theta, y = pt.dvector("theta"), pt.dmatrix("y")
    value = op(theta, y)
    f = pytensor.function([theta, y], pytensor.grad(value, theta))
    np.testing.assert_allclose(f(THETA, Y), loglike_grad(THETA, Y), rtol=1e-12)
    with pytest.raises(pytensor.gradient.NullTypeGradError, match="first argument"):
        pytensor.grad(value, y)


def test_wrong_output_ndim_is_explained():
    require_backend("jax")
    theta = pt.dvector("theta")
    scalar_op = pytensor_op(cubic_means("jax"), "jax")
    with pytest.raises(ValueError, match=r"shape \(3,\).*pass output_ndim="):
        pytensor.function([theta], scalar_op(theta))(THETA)
    array_op = pytensor_op(cubic_means("jax"), "jax", output_ndim=2)
    with pytest.raises(ValueError, match="output_ndim=1"):
        pytensor.function([theta], array_op(theta))(THETA)
    with pytest.raises(ValueError, match="non-negative integer"):
        pytensor_op(cubic_means("jax"), "jax", output_ndim=-1)


def loglike_jax(theta, y):
    """Module level, so the Op pickles by reference in another process."""
    return -0.5 * ((y - theta) ** 2).sum()


def test_ops_pickle_by_reference_to_their_classes():
    require_backend("jax")
    import cloudpickle

    op = pytensor_op(loglike_jax, "jax")
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copy = pickle.loads(dumps(op))
        assert type(copy) is type(op)
        theta = pt.dvector("theta")
        f = pytensor.function([theta], copy(theta, Y))
        np.testing.assert_allclose(f(THETA), -0.5 * np.sum((Y - THETA) ** 2))
    assert "ScalarFunctionOp{loglike_jax, backend='jax'}" in str(op)
    # The classes are reachable from diffops.pytensor, where the docs name them.
    import diffops.pytensor

    assert diffops.pytensor.ScalarFunctionOp is type(op)
    assert type(op).__module__ == "diffops.pytensor.ops"


def test_import_diffops_pytensor_imports_no_pytensor():
    code = (
        "import sys, diffops, diffops.pytensor\n"
        "print([m for m in ('pytensor', 'pymc', 'scipy', 'jax') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_pymc_model_gradient_is_diffops():
    require_backend("jax")
    pm = pytest.importorskip("pymc")
    tau = 2.0
    op = pytensor_op(loglike_jax, "jax")
    with pm.Model() as model:
        theta = pm.Normal("theta", 0.0, tau, shape=2)
        pm.Potential("likelihood", op(theta, Y))
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    point = {"theta": THETA}
    prior = -0.5 * np.sum(THETA**2) / tau**2 - np.log(2 * np.pi * tau**2)
    # PyMC's normalising constant differs from NumPy's in the tenth digit.
    np.testing.assert_allclose(
        logp(point), prior - 0.5 * np.sum((Y - THETA) ** 2), rtol=1e-8
    )
    np.testing.assert_allclose(
        dlogp(point), loglike_grad(THETA, Y) - THETA / tau**2, rtol=1e-12
    )


@pytest.fixture(scope="module")
def pymc_example():
    require_backend("jax")
    pytest.importorskip("pymc")
    path = Path(__file__).resolve().parent.parent / "examples" / "pymc_blackbox.py"
    spec = importlib.util.spec_from_file_location("pymc_blackbox", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pymc_nuts_posterior_mean_matches_the_conjugate_posterior(pymc_example):
    # examples/pymc_blackbox.py: prior theta ~ N(0, tau² I), likelihood
    # y_i ~ N(theta, I) through the diffops Op; the posterior is
    # N(Σ y_i / (n + 1/tau²), I / (n + 1/tau²)).
    import arviz as az

    idata = pymc_example.sample(Y, draws=500, chains=2, seed=1)
    mean, sd = pymc_example.exact_posterior(Y)
    samples = idata.posterior["theta"].values.reshape(-1, 2)
    assert samples.shape == (1000, 2)
    assert samples.dtype == np.float64
    # Monte Carlo standard error from the effective sample size: the sample mean
    # is within 4 MCSE of the exact posterior mean (fails with probability < 1e-4
    # per component for a correct sampler); MCSE itself ≈ sd / √1000 ≈ 0.007.
    mcse = az.mcse(idata, var_names=["theta"])["theta"].values
    assert np.all(mcse < 0.02), mcse
    np.testing.assert_array_less(np.abs(samples.mean(axis=0) - mean), 4 * mcse)
    # The sd estimate's relative standard error is about 1/√(2 ESS) ≈ 2 %.
    np.testing.assert_allclose(samples.std(axis=0), sd, rtol=0.15)
    assert idata.sample_stats["diverging"].values.sum() == 0
