r"""The Rosenbrock function with hand-written derivatives, one of them wrong.

``rosenbrock`` is written with operations every framework's arrays share (slicing,
``**``, ``*``, ``.sum()``), so ``diffops check`` can differentiate it on JAX,
Autograd, SymNum and PyTorch. The derivatives below are written by hand with NumPy,
as users do for speed or when their model cannot be traced:

- ``grad_and_value`` and ``hessian_grad_and_value`` are right;
- ``hessian_grad_and_value_wrong`` has the classic chain-rule slip: the mixed
  partials ``∂²f/∂x[i]∂x[i+1]`` are written ``-200 x[i]`` instead of ``-400 x[i]``.
  Chains of a sampler using it still run; their results are silently wrong.

Check them, each against finite differences and against diffops' own derivatives on
every installed backend (exit status 0, then 1)::

    diffops check examples/rosenbrock.py:rosenbrock --shape 4 \
        --supplied hessian_grad_and_value=hessian_grad_and_value
    diffops check examples/rosenbrock.py:rosenbrock --shape 4 \
        --supplied hessian_grad_and_value=hessian_grad_and_value_wrong
"""

from __future__ import annotations

from typing import Any

import numpy as np


def rosenbrock(x: Any) -> Any:
    """``Σ_i 100 (x[i+1] - x[i]²)² + (1 - x[i])²`` for ``x`` of shape ``(n,)``."""
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def grad_and_value(x: np.ndarray) -> tuple[np.ndarray, np.float64]:
    """Gradient (shape ``(n,)``) and value, by hand."""
    u = x[1:] - x[:-1] ** 2
    grad = np.zeros_like(x)
    grad[:-1] = -400 * x[:-1] * u - 2 * (1 - x[:-1])
    grad[1:] += 200 * u
    return grad, rosenbrock(x)


def _hessian(x: np.ndarray, mixed: float) -> np.ndarray:
    hessian = np.zeros((x.size, x.size), dtype=x.dtype)
    i = np.arange(x.size - 1)
    hessian[i, i] = 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    hessian[i + 1, i + 1] += 200
    hessian[i, i + 1] = hessian[i + 1, i] = mixed * x[:-1]
    return hessian


def hessian_grad_and_value(
    x: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.float64]:
    """Hessian (shape ``(n, n)``), gradient and value, by hand."""
    grad, value = grad_and_value(x)
    return _hessian(x, -400.0), grad, value


def hessian_grad_and_value_wrong(
    x: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.float64]:
    """Like :func:`hessian_grad_and_value`, with the mixed partials halved (a bug)."""
    grad, value = grad_and_value(x)
    return _hessian(x, -200.0), grad, value
