"""Module-level functions for tests that send derivative functions to child processes.

A ``spawn`` child imports this module by name, so what is defined here must import
without any framework being required: the SymNum function is decorated only when
SymNum is installed.
"""

from __future__ import annotations

import importlib.util

import numpy as np

import diffops

if importlib.util.find_spec("symnum") is not None:
    import symnum
    import symnum.numpy as snp

    @symnum.numpify(3)
    def banana3_sym(x):
        """A numpified module-level function (SymNum defines it in a temporary
        module that a child process cannot import)."""
        return -(x[0] ** 2) / 2 - (x[1] - x[0] ** 2) ** 2 + snp.sin(x[2])

    lambda_sym = symnum.numpify_func(lambda x: snp.sum(snp.cos(x) * x), (3,))


def evaluate(derivative, x):
    """Run in the child: the derivative's arrays (closures applied to ones)."""
    out = derivative(x)
    return [
        np.asarray(o(np.ones(o.arg_shape))) if callable(o) else np.asarray(o)
        for o in out
    ]


def evaluate_op(op_name, func, backend, x):
    """Build in the parent, evaluate in the child."""
    return evaluate(getattr(diffops, op_name)(func, backend=backend), x)


# One potential per framework, importing the framework only when called.
def jax_potential(x):
    import jax.numpy as jnp

    return jnp.sum(jnp.sin(x) * x**2) + jnp.prod(jnp.cos(x))


def autograd_potential(x):
    import autograd.numpy as anp

    return anp.sum(anp.sin(x) * x**2) + anp.prod(anp.cos(x))


def torch_potential(x):
    import torch

    return torch.sum(torch.sin(x) * x**2) + torch.prod(torch.cos(x))


if importlib.util.find_spec("symnum") is not None:

    @symnum.numpify(3)
    def symnum_potential(x):
        """The same potential on SymNum."""
        return snp.sum(snp.sin(x) * x**2) + snp.cos(x[0]) * snp.cos(x[1]) * snp.cos(
            x[2]
        )


def potential(backend):
    """The module-level potential written for ``backend``'s framework."""
    name = "jax" if backend.startswith("jax") else backend
    return globals()[f"{name}_potential"]


def evaluate_object(obj, x):
    """Arrays from a derivative function, batched function or wrapped function."""
    out = obj(x)
    if not isinstance(out, tuple):
        return [np.asarray(out)]
    return [
        np.asarray(o(np.ones(o.arg_shape))) if callable(o) else np.asarray(o)
        for o in out
    ]


def evaluate_in_fork(obj, x):
    """Run in a forked child: the object's arrays, or the error's class name."""
    try:
        return evaluate_object(obj, x)
    except Exception as err:
        return f"{type(err).__name__}: {err}"


def apply_in_fork(closure, m):
    """Run in a forked child: a closure made in the parent, applied to ``m``."""
    try:
        return [np.asarray(closure(m))]
    except Exception as err:
        return f"{type(err).__name__}: {err}"


def torch_threads():
    """PyTorch's intra-op threads in this process."""
    import torch

    return torch.get_num_threads()
