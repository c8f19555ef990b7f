"""Riemannian-manifold HMC with Mici's SoftAbs metric, derivatives from diffops.

The target is Neal's funnel; the gradient, Hessian and matrix-Tressian product
are built by diffops on the JAX backend. Run it with
``python examples/mici_softabs.py``.

The SoftAbs metric is a smoothed absolute value of the Hessian of the negative
log-density, so the sampler needs the Hessian (``hessian_grad_and_value``) and,
for the derivative of the metric in the implicit leapfrog steps, the
matrix-Tressian product (``mtp_hessian_grad_and_value``), both returned together
with the lower-order derivatives that Mici caches alongside them.
``jax_enable_x64`` stays off: float64 inputs are computed in float64 all the same.

The funnel (Neal, 2003) is the classic target for this metric (Betancourt, 2013):
``v ~ N(0, 3²)`` and ``z | v ~ N(0, exp(v))``, whose curvature changes by orders
of magnitude between the neck and the mouth of the funnel.
"""

from __future__ import annotations

import argparse
from typing import Any

import jax
import jax.numpy as jnp
import mici
import numpy as np

import diffops

V_SCALE = 3.0


def neg_log_dens(q: Any) -> Any:
    """Negative log-density of the funnel at ``q = (v, z_1, ..., z_{d-1})``.

    ``v²/(2·3²) + Σ_i z_i² exp(-v)/2 + (d - 1) v/2`` (up to a constant).
    """
    v, z = q[0], q[1:]
    return v**2 / (2 * V_SCALE**2) + jnp.sum(z**2) * jnp.exp(-v) / 2 + z.size * v / 2


# Built once (lazily, on first call); Mici caches their outputs in its chain states.
neg_log_dens_value = diffops.wrap_function(neg_log_dens, "jax")
grad_neg_log_dens = diffops.grad_and_value(neg_log_dens)
hess_neg_log_dens = diffops.hessian_grad_and_value(neg_log_dens)
mtp_neg_log_dens = diffops.mtp_hessian_grad_and_value(neg_log_dens)


def make_system(softabs_coeff: float = 1.0) -> mici.systems.System:
    """Mici's SoftAbs Riemannian-metric system with diffops' derivatives.

    Args:
        softabs_coeff: SoftAbs regularisation coefficient (larger: closer to the
            absolute value of the Hessian's eigenvalues).

    Returns:
        A ``mici.systems.SoftAbsRiemannianMetricSystem`` that uses no Mici
        autodiff backend.
    """
    return mici.systems.SoftAbsRiemannianMetricSystem(
        neg_log_dens=neg_log_dens_value,
        grad_neg_log_dens=grad_neg_log_dens,
        hess_neg_log_dens=hess_neg_log_dens,
        mtp_neg_log_dens=mtp_neg_log_dens,
        softabs_coeff=softabs_coeff,
        backend=None,  # every derivative is given explicitly
    )


def sample(
    n_warm_up_iter: int = 100,
    n_main_iter: int = 100,
    n_chain: int = 2,
    dim: int = 2,
    softabs_coeff: float = 1.0,
    max_tree_depth: int = 5,
    seed: int = 1,
) -> mici.samplers.HMCSampleChainsOutputs:
    """Run SoftAbs Riemannian-manifold HMC on the ``dim``-dimensional funnel.

    Args:
        n_warm_up_iter: Warm-up iterations per chain (step size adaptation).
        n_main_iter: Iterations per chain kept as samples.
        n_chain: Number of chains (run one after the other, in this process).
        dim: Dimension of the funnel (``v`` and ``dim - 1`` values ``z``).
        softabs_coeff: SoftAbs regularisation coefficient.
        max_tree_depth: Largest depth of the trajectory tree (at most
            ``2**max_tree_depth - 1`` leapfrog steps per iteration).
        seed: Seed of the random number generator.

    Returns:
        Mici's ``(final_states, traces, statistics)``; ``traces["pos"]`` is a list
        of ``n_chain`` arrays of shape ``(n_main_iter, dim)``.
    """
    rng = np.random.default_rng(seed)
    system = make_system(softabs_coeff)
    # Implicit steps: fixed-point iterations on the metric, which needs its
    # derivative (the MTP) at every iteration.
    integrator = mici.integrators.ImplicitLeapfrogIntegrator(system)
    sampler = mici.samplers.DynamicMultinomialHMC(
        system, integrator, rng, max_tree_depth=max_tree_depth
    )
    init_states = [
        np.concatenate([[0.0], 0.5 * rng.standard_normal(dim - 1)])
        for _ in range(n_chain)
    ]
    # Mici's SoftAbs derivative computes x / sinh(x)² for the eigenvalues x, which
    # overflows to its limit 0 for large curvatures (deep in the funnel's neck).
    with np.errstate(over="ignore"):
        return sampler.sample_chains(
            n_warm_up_iter,
            n_main_iter,
            init_states,
            adapters=[mici.adapters.DualAveragingStepSizeAdapter(0.8)],
            display_progress=False,
        )


def summary(traces: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """Numbers to check a run by: dtype, finiteness, acceptance, moments of ``v``."""
    positions = np.concatenate(traces["pos"])
    accept = np.concatenate(stats["accept_stat"])
    diverging = np.concatenate(stats["diverging"])
    return {
        "n_samples": len(positions),
        "dtype": positions.dtype,
        "all_finite": bool(np.all(np.isfinite(positions))),
        "mean_accept_stat": float(np.mean(accept)),
        "divergent_fraction": float(np.mean(diverging)),
        "v_mean": float(positions[:, 0].mean()),
        "v_sd": float(positions[:, 0].std()),
    }


def main() -> None:
    """Sample, then check the samples and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warm-up", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--max-tree-depth", type=int, default=5)
    args = parser.parse_args()
    assert not jax.config.jax_enable_x64
    _final_states, traces, stats = sample(
        args.warm_up,
        args.iterations,
        args.chains,
        args.dim,
        max_tree_depth=args.max_tree_depth,
    )
    result = summary(traces, stats)
    n_samples, dtype = result["n_samples"], result["dtype"]
    print(f"{args.chains} chains, {n_samples} samples, dtype {dtype}")
    print(f"mean acceptance statistic: {result['mean_accept_stat']:.3f}")
    print(f"divergent transitions: {result['divergent_fraction']:.1%}")
    print(
        f"v: mean {result['v_mean']:.2f} (exact 0), sd {result['v_sd']:.2f} "
        f"(exact {V_SCALE:.0f})"
    )
    assert result["dtype"] == np.float64, result["dtype"]
    assert result["all_finite"]
    assert not jax.config.jax_enable_x64  # float64 without changing the global flag


if __name__ == "__main__":
    main()
