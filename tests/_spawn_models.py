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
