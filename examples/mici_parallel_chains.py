"""Mici's constrained HMC with chains on worker processes, on any diffops backend.

Run it with ``python examples/mici_parallel_chains.py --backend torch`` (``jax``,
``jax_nojit``, ``jax_codegen``, ``autograd``, ``symnum``, ``torch``). The target is a
quartic density restricted to the unit sphere in three dimensions; its gradient, the
constraint's Jacobian and matrix-Hessian product are diffops derivative functions, and
the functions Mici evaluates on their own go through ``diffops.wrap_function``. Mici
sends all of them to its worker processes, which receive each as its recipe (the
function and the backend) and compile it again there.

The worker processes are started with ``spawn``: one line,
``multiprocessing.set_start_method("spawn")``, at the start of the main script. JAX
cannot compute in a child created by ``fork`` once it computed in the parent, and Mici
itself evaluates the Hamiltonian of the first state in the parent before starting its
pool (to size its trace arrays, and to sample the initial momenta); ``spawn``
children start afresh. PyTorch, Autograd and SymNum also work with ``fork``
(``--start-method fork``); so does JAX if the parent never computed with it:
``--parent-computes-nothing`` gives Mici initial momenta and traces positions only.
On ``jax_codegen`` the workers run generated NumPy code, not JAX, so ``fork`` works
after the parent computed, once the code exists: ``--warm-up`` calls each function
once in the parent (``jax_codegen`` generates code per input shape).
"""

from __future__ import annotations

import argparse
import multiprocessing
from typing import Any

import mici
import numpy as np

import diffops

DIMENSION = 3


def neg_log_dens(q: Any) -> Any:
    """A quartic negative log-density, written once for every framework's arrays."""
    return (q**2).sum() / 2 + (q**4).sum() / 4


def constr(q: Any) -> Any:
    """The unit sphere as a 3 -> 1 constraint (shape ``(1,)``)."""
    return q[:1] * 0 + (q**2).sum() - 1


def trace_positions(state: Any) -> dict[str, Any]:
    """A trace that computes nothing: positions only."""
    return {"pos": state.pos}


def system_functions(backend: str) -> dict[str, Any]:
    """Mici's model functions and their diffops derivatives on ``backend``."""
    value, constraint = neg_log_dens, constr
    if backend == "symnum":
        import symnum

        # SymNum differentiates numpified functions; the plain ones take NumPy
        # arrays as they are (and pickle by reference).
        value = symnum.numpify(DIMENSION)(neg_log_dens)
        constraint = symnum.numpify(DIMENSION)(constr)
    return {
        "neg_log_dens": diffops.wrap_function(neg_log_dens, backend),
        "constr": diffops.wrap_function(constr, backend),
        "grad_neg_log_dens": diffops.grad_and_value(value, backend=backend),
        "jacob_constr": diffops.jacobian_and_value(constraint, backend=backend),
        "mhp_constr": diffops.mhp_jacobian_and_value(constraint, backend=backend),
    }


def warm_up(functions: dict[str, Any], q: np.ndarray) -> None:
    """Call each function once at ``q`` (and apply the closures) in this process."""
    for function in functions.values():
        out = function(q)
        if isinstance(out, tuple) and callable(out[0]):
            closure = out[0]
            closure(np.ones(closure.arg_shape))


def sample(
    backend: str,
    n_chain: int = 2,
    n_worker: int = 2,
    n_iter: int = 20,
    seed: int = 1,
    max_tree_depth: int = 10,
    parent_computes_nothing: bool = False,
    warm: bool = False,
) -> Any:
    """Sample ``n_chain`` chains on ``n_worker`` processes; Mici's outputs."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((n_chain, DIMENSION))
    positions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    init_states: list[Any] = list(positions)
    extra = {}
    if parent_computes_nothing:
        # Momenta tangent to the sphere at each position, and a trace of positions
        # only: Mici then evaluates no model function before its pools start.
        momenta = rng.standard_normal((n_chain, DIMENSION))
        momenta -= np.sum(momenta * positions, axis=1, keepdims=True) * positions
        init_states = [
            mici.states.ChainState(pos=q, mom=p, dir=1)
            for q, p in zip(positions, momenta, strict=True)
        ]
        extra["trace_funcs"] = [trace_positions]
    functions = system_functions(backend)
    if warm:
        warm_up(functions, positions[0])
    return mici.sample_constrained_hmc_chains(
        n_warm_up_iter=n_iter,
        n_main_iter=n_iter,
        init_states=init_states,
        backend=None,  # every function below comes from diffops
        seed=seed,
        n_worker=n_worker,
        display_progress=False,
        sampler_kwargs={"max_tree_depth": max_tree_depth},
        **functions,
        **extra,
    )


def main() -> None:
    """Sample, check the samples and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="jax")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--start-method", default="spawn")
    parser.add_argument("--parent-computes-nothing", action="store_true")
    parser.add_argument("--max-tree-depth", type=int, default=10)
    parser.add_argument("--warm-up", action="store_true")
    args = parser.parse_args()
    # The one line that lets JAX users run Mici's chains on worker processes.
    multiprocessing.set_start_method(args.start_method, force=True)
    settings = (args.backend, args.chains, args.workers, args.iterations)
    _, traces, _ = sample(
        *settings,
        max_tree_depth=args.max_tree_depth,
        parent_computes_nothing=args.parent_computes_nothing,
        warm=args.warm_up,
    )
    positions = np.concatenate(traces["pos"])
    violation = np.max(np.abs(np.sum(positions**2, axis=1) - 1))
    print(
        f"{args.backend}: {len(traces['pos'])} chains on {args.workers} "
        f"{args.start_method} workers, {len(positions)} samples, dtype "
        f"{positions.dtype}, largest constraint violation {violation:.1e}"
    )
    assert positions.dtype == np.float64, positions.dtype
    assert violation < 1e-8, violation


if __name__ == "__main__":
    main()
