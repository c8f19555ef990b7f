"""Mici's constrained HMC on a torus: four chains on two worker processes.

The derivatives are built by diffops on the JAX backend. Run it with ``python
examples/mici_torus_parallel.py``. JAX cannot compute in a child created by ``fork``
after it started in the parent, so the worker processes are started with ``spawn``;
diffops derivative functions pickle (they carry their recipe and compile again in each
worker). ``jax_enable_x64`` stays off: float64 inputs are computed in float64 all the
same.
"""

from __future__ import annotations

import argparse
import multiprocessing

import jax
import jax.numpy as jnp
import mici
import numpy as np

import diffops


def neg_log_dens(q):
    """A standard normal restricted to the torus."""
    return 0.5 * jnp.sum(q**2)


def constr(q):
    """The torus ((x² + y²)^½ − 1)² + z² = 0.25, as a 3 → 1 constraint."""
    r = jnp.sqrt(q[0] ** 2 + q[1] ** 2)
    return jnp.stack([(r - 1) ** 2 + q[2] ** 2 - 0.25])


# Built once per process (lazily, on first call): each worker compiles its own.
grad_neg_log_dens = diffops.grad_and_value(neg_log_dens)
jacob_constr = diffops.jacobian_and_value(constr)
mhp_constr = diffops.mhp_jacobian_and_value(constr)


def neg_log_dens_value(q):
    """The value as a NumPy scalar (Mici calls it on its own)."""
    return grad_neg_log_dens(q)[1]


def constr_value(q):
    """The constraint's value as a NumPy array."""
    return jacob_constr(q)[1]


def sample(n_chain: int = 4, n_worker: int = 2, n_iter: int = 100, seed: int = 1):
    """Run the sampler and return its final states and traces."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * np.pi, n_chain)
    # Points on the torus: radius 1.5 in the x-y plane, z = 0.
    init_states = [np.array([1.5 * np.cos(a), 1.5 * np.sin(a), 0.0]) for a in angles]
    return mici.sample_constrained_hmc_chains(
        n_warm_up_iter=n_iter,
        n_main_iter=n_iter,
        init_states=init_states,
        neg_log_dens=neg_log_dens_value,
        constr=constr_value,
        backend=None,  # every derivative below is given explicitly
        grad_neg_log_dens=grad_neg_log_dens,
        jacob_constr=jacob_constr,
        mhp_constr=mhp_constr,
        seed=seed,
        n_worker=n_worker,
        display_progress=False,
    )


def main() -> None:
    """Sample, then check the samples and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    multiprocessing.set_start_method("spawn", force=True)
    assert not jax.config.jax_enable_x64
    _final_states, traces, _stats = sample(args.chains, args.workers, args.iterations)
    positions = np.concatenate(traces["pos"])
    violation = np.max(np.abs([constr_value(q)[0] for q in positions]))
    n_chains = len(traces["pos"])
    print(f"{n_chains} chains, {len(positions)} samples, dtype {positions.dtype}")
    print(f"largest constraint violation: {violation:.2e}")
    print(f"mean position: {np.round(positions.mean(axis=0), 3)}")
    assert positions.dtype == np.float64, positions.dtype
    assert violation < 1e-8, violation
    assert not jax.config.jax_enable_x64  # float64 without changing the global flag


if __name__ == "__main__":
    main()
