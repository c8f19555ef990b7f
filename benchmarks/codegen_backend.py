"""The jax_codegen backend against the jax backend, side by side (issue 20).

Everything goes through diffops' derivative functions (the NumPy boundary included),
with JAX's global ``jax_enable_x64`` flag left off as most users leave it (the jax
backend then enters ``jax.enable_x64`` for each float64 call):

- per call: banana value + gradient + Hessian, torus Jacobian + value and its MHP
  closure applied to a matrix; hand-written NumPy (the models' closed forms) and
  SymNum's generated code (the ``symnum`` backend) alongside;
- a plain Python HMC loop (leapfrog, 10^5 gradient calls on banana): jax against
  jax_codegen, and the largest difference between their trajectories;
- the first call (trace + generate + load; the disk cache off) against the jax
  backend's first call (trace + XLA compile), each on a fresh function object;
- value + gradient + Hessian of logistic regression at growing d (the crossover),
  up to d = 1,000.

Run it alone on the machine, with one thread per library as ``diffops_bench
--threads 1`` runs (on a loaded machine, multi-threaded BLAS can take 50 times longer
on the d = 100 Hessian's matrix product)::

    export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
    export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    flock /tmp/diffops-timing.lock .venv/bin/python -m benchmarks.codegen_backend
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ["DIFFOPS_CODEGEN_CACHE"] = "off"
sys.stdout.reconfigure(line_buffering=True)

import diffops  # noqa: E402
from benchmarks.codegen_timing import interleaved, report  # noqa: E402
from diffops import models  # noqa: E402

BACKENDS = ("jax", "jax_codegen")


def banana_case(repeats: int, batch_s: float) -> None:
    model = models.MODELS["banana"]
    x = np.array([0.3, -0.7])
    calls: dict[str, Callable[[], Any]] = {
        "hand-written NumPy": lambda: (model.second(x), model.first(x), model.value(x))
    }
    f_sym, options = model.function("symnum")
    sym = diffops.hessian_grad_and_value(f_sym, backend="symnum", **options)
    calls["diffops symnum"] = lambda: sym(x)
    f_jax, _ = model.function("jax")
    for backend in BACKENDS:
        d = diffops.hessian_grad_and_value(f_jax, backend=backend)
        d(x)
        calls[f"diffops {backend}"] = lambda d=d: d(x)
    times = interleaved(calls, repeats, batch_s)
    report("banana: value + gradient + Hessian (d = 2)", times, "hand-written NumPy")


def torus_case(repeats: int, batch_s: float) -> None:
    model = models.MODELS["torus"]
    x = np.array([0.8, -0.5, 0.3])
    m = np.array([[0.7, -1.2, 0.4]])
    jv: dict[str, Callable[[], Any]] = {
        "hand-written NumPy": lambda: (model.first(x), model.value(x))
    }
    mhp: dict[str, Callable[[], Any]] = {
        "hand-written NumPy": lambda: np.tensordot(m, model.second(x), axes=2)
    }
    sources = {"symnum": model.function("symnum"), "jax": model.function("jax")}
    for backend in ("symnum", *BACKENDS):
        f, options = sources["symnum" if backend == "symnum" else "jax"]
        d_jv = diffops.jacobian_and_value(f, backend=backend, **options)
        d_mhp = diffops.mhp_jacobian_and_value(f, backend=backend, **options)
        closure = d_mhp(x)[0]
        np.testing.assert_allclose(closure(m), mhp["hand-written NumPy"](), rtol=1e-12)
        jv[f"diffops {backend}"] = lambda d=d_jv: d(x)
        mhp[f"diffops {backend}"] = lambda c=closure: c(m)
    report(
        "torus: Jacobian + value (3 -> 1)",
        interleaved(jv, repeats, batch_s),
        "hand-written NumPy",
    )
    report(
        "torus: MHP closure applied to m (1 x 3)",
        interleaved(mhp, repeats, batch_s),
        "hand-written NumPy",
    )


def leapfrog_chain(
    grad_and_value: Callable[..., Any], n_steps: int, step: float = 0.05
) -> np.ndarray:
    """Positions of a plain HMC leapfrog loop (one gradient call per step)."""
    rng = np.random.default_rng(20)
    q = np.array([0.3, -0.7])
    p = rng.standard_normal(2)
    grad, _ = grad_and_value(q)
    positions = np.empty((n_steps, 2))
    for i in range(n_steps):
        p = p + 0.5 * step * grad
        q = q + step * p
        grad, _ = grad_and_value(q)
        p = p + 0.5 * step * grad
        positions[i] = q
        if i % 20 == 19:  # a fresh momentum now and then, as HMC draws it
            p = rng.standard_normal(2)
    return positions


def hmc_case(n_steps: int, repeats: int) -> None:
    f, _ = models.MODELS["banana"].function("jax")
    derivatives = {b: diffops.grad_and_value(f, backend=b) for b in BACKENDS}
    chains: dict[str, np.ndarray] = {}
    samples: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for r in range(repeats):
        for backend in BACKENDS if r % 2 == 0 else BACKENDS[::-1]:
            start = time.perf_counter()
            chains[backend] = leapfrog_chain(derivatives[backend], n_steps)
            samples[backend].append(time.perf_counter() - start)
    times = {b: statistics.median(s) for b, s in samples.items()}
    diff = float(np.max(np.abs(chains["jax"] - chains["jax_codegen"])))
    print(f"\nplain Python HMC loop: {n_steps} leapfrog steps on banana (s, median)")
    for backend, t in times.items():
        print(
            f"  {backend:<14} {t:7.3f} s  {t / n_steps * 1e6:6.2f} us/step   "
            f"{times['jax'] / t:5.2f}x faster than jax"
        )
    print(f"  largest |q_jax - q_jax_codegen| over the trajectory: {diff:.2e}")


def first_call_case(repeats: int) -> None:
    banana, _ = models.MODELS["banana"].function("jax")
    torus, _ = models.MODELS["torus"].function("jax")
    logistic = models.logistic_model(100, 200)
    logistic_f, _ = logistic.function("jax")
    programs = {
        "banana hessian_grad_and_value": (
            "hessian_grad_and_value",
            banana,
            np.array([0.3, -0.7]),
        ),
        "torus mhp_jacobian_and_value": (
            "mhp_jacobian_and_value",
            torus,
            np.array([0.8, -0.5, 0.3]),
        ),
        "logistic d=100 hessian_grad_and_value": (
            "hessian_grad_and_value",
            logistic_f,
            np.linspace(-0.3, 0.3, 100),
        ),
    }
    print("\nfirst call of a new derivative function (ms, median)")
    for title, (op_name, func, x) in programs.items():
        samples: dict[str, list[float]] = {b: [] for b in BACKENDS}
        for _ in range(repeats):
            for backend in BACKENDS:
                fresh = lambda y, func=func: func(y)  # noqa: E731 - nothing shared
                d = diffops.DerivativeFunction(fresh, op_name, backend)
                start = time.perf_counter()
                d(x)
                samples[backend].append(time.perf_counter() - start)
        t = {b: statistics.median(s) * 1e3 for b, s in samples.items()}
        print(
            f"  {title:<40} jax_codegen {t['jax_codegen']:7.1f}   jax {t['jax']:7.1f}"
            f"   ratio {t['jax_codegen'] / t['jax']:5.2f}"
        )


def logistic_case(repeats: int, batch_s: float, dims: tuple[int, ...]) -> None:
    print("\nlogistic regression value + gradient + Hessian, n = 2 d (us per call)")
    for dim in dims:
        model = models.logistic_model(dim, 2 * dim)
        f, _ = model.function("jax")
        x = np.linspace(-0.3, 0.3, dim) / np.sqrt(dim)
        calls = {}
        outs = {}
        for backend in BACKENDS:
            d = diffops.hessian_grad_and_value(f, backend=backend)
            outs[backend] = d(x)
            calls[backend] = lambda d=d, x=x: d(x)
        for g, w in zip(outs["jax_codegen"], outs["jax"], strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
        times = interleaved(calls, repeats, batch_s)
        mode = "scalar" if "straight-line" in d.source else "array"
        print(
            f"  d = {dim:5d}: jax {times['jax'] * 1e6:10.1f}   jax_codegen "
            f"{times['jax_codegen'] * 1e6:10.1f} ({mode})   "
            f"ratio {times['jax_codegen'] / times['jax']:5.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 21
    batch_s = 0.01 if args.quick else 0.03
    import jax

    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"jax {jax.__version__}, diffops {diffops.__version__}"
    )
    banana_case(repeats, batch_s)
    torus_case(repeats, batch_s)
    hmc_case(10_000 if args.quick else 100_000, 1 if args.quick else 3)
    first_call_case(3 if args.quick else 5)
    dims = (2, 5, 10, 20, 50, 100, 200, 500, 1000)
    logistic_case(max(3, repeats // 3), batch_s * 3, dims)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
