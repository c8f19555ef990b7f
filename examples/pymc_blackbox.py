"""A black-box JAX log-likelihood inside a PyMC model, sampled with NUTS.

Run it with ``python examples/pymc_blackbox.py`` (``pip install pymc``). The
log-likelihood of a 2-d Gaussian with unknown mean is written with ``jax.numpy``
and enters the PyMC model through ``diffops.pytensor.pytensor_op``, whose gradient
is diffops' (one ``grad_and_value`` evaluation per point gives NUTS both the value
and the gradient). With the conjugate prior ``theta ~ N(0, tau² I)`` the posterior
is known exactly, and the script compares it with the samples.
"""

from __future__ import annotations

import argparse
from typing import Any

import jax.numpy as jnp
import numpy as np
import pymc as pm

import diffops.pytensor

TAU = 2.0


def log_likelihood(theta: Any, y: Any) -> Any:
    """``-½ Σ_i |y_i - theta|²``: ``y_i ~ N(theta, I)``, up to a constant."""
    return -0.5 * jnp.sum((y - theta) ** 2)


def exact_posterior(y: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean (shape ``(2,)``) and standard deviation of the conjugate posterior."""
    precision = len(y) + 1 / TAU**2
    return y.sum(axis=0) / precision, float(1 / np.sqrt(precision))


def sample(y: np.ndarray, draws: int = 1000, chains: int = 2, seed: int = 1) -> Any:
    """Sample the posterior of ``theta`` with PyMC's NUTS.

    Args:
        y: Observations, shape ``(n, 2)``.
        draws: Draws per chain (as many tuning steps first).
        chains: Number of chains, run one after the other in this process (with
            ``cores > 1``, pass ``mp_ctx="spawn"``: JAX cannot run in a forked
            child).
        seed: Random seed.

    Returns:
        PyMC's ``InferenceData``.
    """
    loglike = diffops.pytensor.pytensor_op(log_likelihood, backend="jax")
    with pm.Model():
        theta = pm.Normal("theta", 0.0, TAU, shape=2)
        pm.Potential("likelihood", loglike(theta, y))
        return pm.sample(
            draws=draws,
            tune=draws,
            chains=chains,
            cores=1,
            random_seed=seed,
            progressbar=False,
        )


def main() -> None:
    """Sample and compare with the exact posterior."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    args = parser.parse_args()
    y = np.random.default_rng(0).standard_normal((20, 2)) + np.array([1.0, -0.5])
    idata = sample(y, args.draws, args.chains)
    samples = idata.posterior["theta"].values.reshape(-1, 2)
    mean, sd = exact_posterior(y)
    estimate, spread = samples.mean(axis=0).round(3), samples.std(axis=0).round(3)
    print(f"posterior mean: {estimate} (exact {mean.round(3)})")
    print(f"posterior sd:   {spread} (exact {sd:.3f})")


if __name__ == "__main__":
    main()
