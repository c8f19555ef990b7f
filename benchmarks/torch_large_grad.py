"""diffops torch grad_and_value against a hand-written torch.autograd.grad at d = 10⁶.

Run: .venv/bin/python benchmarks/torch_large_grad.py
Prints median milliseconds per call (5 calls per batch, 9 batches), one thread.
"""

import statistics
import timeit

import numpy as np
import torch

import diffops

torch.set_num_threads(1)


def log_density(x):
    return -0.5 * torch.sum((x[1:] - x[:-1]) ** 2) - torch.sum(
        torch.nn.functional.softplus(x)
    )


x = np.random.default_rng(0).standard_normal(10**6)
grad_and_value = diffops.grad_and_value(log_density, backend="torch")
grad_and_value(x)


def hand_written():
    xt = torch.from_numpy(x).requires_grad_(True)
    value = log_density(xt)
    (grad,) = torch.autograd.grad(value, xt)
    return grad.numpy(), value.item()


def value_only():
    with torch.no_grad():
        return log_density(torch.from_numpy(x)).item()


def median_ms(call):
    return statistics.median(timeit.repeat(call, number=5, repeat=9)) / 5 * 1e3


diffops_ms = median_ms(lambda: grad_and_value(x))
hand_ms = median_ms(hand_written)
value_ms = median_ms(value_only)
print(f"diffops grad_and_value {diffops_ms:.1f} ms")
print(f"hand-written autograd  {hand_ms:.1f} ms")
print(f"value alone            {value_ms:.1f} ms")
print(f"grad/value: diffops {diffops_ms / value_ms:.2f}, hand {hand_ms / value_ms:.2f}")
