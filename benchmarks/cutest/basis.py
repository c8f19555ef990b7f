"""Unit vectors built in a compiled program (``iota``) or taken as its constant.

The measurement behind ``diffops.backends.jax.CONSTANT_BASIS``: for CUTEst Hessians
(sif2jax), pure JAX, ``jax.jit`` of the value, gradient and one Hessian-vector
product per unit vector (``jax.vmap`` of ``jax.jvp`` over the gradient), the unit
vectors made with ``jnp.eye`` inside the traced function or passed in as a NumPy
constant. Prints µs per call (fastest of seven batches) and the first call's seconds
(tracing, compiling, constant folding). From the repository root::

    python -m benchmarks.cutest.basis HS71:lagrangian,HS111:lagrangian,ARGLINA:hessian
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diffops.timing import time_batch

from . import clock, problems


def _best(call: Callable[[], Any], rounds: int = 7) -> float:
    """Fastest batch's µs per call (batches of at least 50 ms)."""
    call()
    _, seconds = clock.timed(call)
    loops = max(1, int(0.05 / max(seconds, 1e-6)))
    return min(time_batch(call, loops) / loops for _ in range(rounds)) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    """Time both ways for each ``PROBLEM:matrix`` given."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_cpu_enable_async_dispatch", False)
    problems.setup()
    items = (argv if argv is not None else sys.argv[1:]) or ["HS71:lagrangian"]
    for item in ",".join(items).split(","):
        name, matrix = item.split(":")
        spec = problems.discover(names=[name])[0]
        built = problems.build(spec, matrix, n_points=1)
        x, args = built.points[0]
        f, n = built.func, x.size

        def grad_with_value(z: Any, *a: Any, f: Any = f) -> tuple[Any, Any]:
            value, grad = jax.value_and_grad(f)(z, *a)
            return grad, value

        def program(inside: bool, n: int = n, gv: Any = grad_with_value) -> Any:
            def hessian(y: Any, *a: Any) -> Any:
                eye = jnp.eye(n, dtype=y.dtype) if inside else jnp.asarray(np.eye(n))

                def jvp(t: Any) -> Any:
                    return jax.jvp(lambda z: gv(z, *a), (y,), (t,), has_aux=True)

                return jax.vmap(jvp, out_axes=(None, 0, None))(eye)

            return jax.jit(hessian)

        line = [f"{name} {matrix} (n = {n}):"]
        for label, inside in (("iota", True), ("constant", False)):
            compiled = program(inside)
            start = time.perf_counter()
            jax.block_until_ready(compiled(x, *args))
            first = time.perf_counter() - start
            per_call = _best(
                lambda c=compiled, x=x, a=args: jax.block_until_ready(c(x, *a))
            )
            line.append(f"{label} {per_call:.1f} µs (first call {first:.2f} s)")
        print("  ".join(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
