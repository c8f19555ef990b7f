"""JAX in fork children, run as a script in a fresh process (where JAX never ran).

``python tests/_fork_jax.py BACKEND`` prints one JSON object: for each JAX path, what a
fork child got from it, first while the parent has only built (and traced) things,
then after the parent computed. Used by ``test_processes.py``.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import warnings

import numpy as np

import diffops
from diffops import jax_wrapper

X = np.array([0.4, -1.3])
XS = np.array([[0.4, -1.3], [1.1, 0.2]])
TIMEOUT = 60


def scalar(x):
    import jax.numpy as jnp

    return jnp.sum(jnp.sin(x) * x**3)


def vector(x):
    import jax.numpy as jnp

    return jnp.stack([x[0] ** 2 * x[1], jnp.sin(x[0]), x[1] ** 3])


def with_closure(x):
    import jax

    value, pullback = jax.vjp(vector, x)
    return value, jax.tree_util.Partial(lambda v: pullback(v)[0])


def paths(backend):
    """name -> function of nothing computing through one JAX path of diffops."""
    import jax

    mtp = diffops.mtp_hessian_grad_and_value(scalar, backend=backend)
    mhp = diffops.mhp_jacobian_and_value(vector, backend=backend)
    batched_hvp = diffops.batched(diffops.hvp_grad_and_value(scalar, backend=backend))
    framework = diffops.jvp_and_value(vector, backend=backend, as_numpy=False)
    sparse = diffops.jacobian_and_value(vector, backend=backend, sparsity="detect")
    wrapped = diffops.wrap_function(vector, backend)
    returning = jax_wrapper.return_numpy_arrays(with_closure)
    jax.make_jaxpr(scalar)(X)  # tracing is not computing
    return {
        "operator": lambda: mtp(X)[1],
        "closure": lambda: mtp(X)[0](np.ones((2, 2))),
        "vector operator": lambda: mhp(X)[1],
        "batched": lambda: batched_hvp(XS)[1],
        "batched closure": lambda: batched_hvp(XS)[0](np.ones((2, 2))),
        "as_numpy=False": lambda: np.asarray(framework(X)[0](np.ones(2))),
        "sparse": lambda: sparse(X)[0].toarray(),
        "wrap_function": lambda: wrapped(X),
        "returned closure": lambda: returning(X)[1](np.ones(3)),
    }


PATHS: dict = {}
MADE_IN_PARENT: dict = {}


def _in_child(name):
    try:
        if name in MADE_IN_PARENT:
            return np.asarray(MADE_IN_PARENT[name]()).tolist()
        return np.asarray(PATHS[name]()).tolist()
    except Exception as err:
        return f"{type(err).__name__}: {err}"


def in_fork_children(names):
    """What a fork child gets from each path (``"HANG"`` after the timeout)."""
    results = {}
    context = multiprocessing.get_context("fork")
    for name in names:
        with context.Pool(1) as pool:
            job = pool.apply_async(_in_child, (name,))
            try:
                results[name] = job.get(timeout=TIMEOUT)
            except multiprocessing.TimeoutError:
                results[name] = "HANG"
    return results


def main():
    backend = sys.argv[1]
    warnings.simplefilter("ignore")  # JAX warns at every fork once it computed
    from jax._src import xla_bridge

    PATHS.update(paths(backend))
    report = {"computed before": xla_bridge.backends_are_initialized()}
    report["fresh"] = in_fork_children(list(PATHS))
    report["parent"] = {n: np.asarray(f()).tolist() for n, f in PATHS.items()}
    # Closures made in the parent, applied in the child.
    mtp_closure = diffops.mtp_hessian_grad_and_value(scalar, backend=backend)(X)[0]
    wrapped_closure = jax_wrapper.return_numpy_arrays(with_closure)(X)[1]
    MADE_IN_PARENT["parent's closure"] = lambda: mtp_closure(np.ones((2, 2)))
    MADE_IN_PARENT["parent's returned closure"] = lambda: wrapped_closure(np.ones(3))
    report["computed"] = in_fork_children([*PATHS, *MADE_IN_PARENT])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
