"""Side-by-side timing of diffops.codegen's generated NumPy code (issue 20).

Per-call times (median of interleaved batches) of the same derivative computation:

- banana: value + gradient + Hessian;
- torus: Jacobian + value, and the MHP closure applied to a matrix;

each as hand-written NumPy (the models' closed forms), SymNum's generated code,
raw ``jax.jit`` (outputs converted to NumPy; ``jax_enable_x64`` set globally for the
run, so no ``jax.enable_x64`` scope is entered per call), and diffops.codegen's
generated code
(traced from ``diffops.backends.jax``'s operators, flattened with
``jax.tree_util``). Then the first-call cost (trace + emit + exec) against
``jax.jit`` compilation of the same program, and the logistic-regression Hessian at
d = 1,000 against ``jax.jit``.

``--calibrate`` times scalar mode against array mode on programs of growing size
(the logistic model's value + gradient + Hessian at d = 1 .. 24, its gradient at
d = 1 .. 64, the banana and torus programs) and prints the measured times next to
the cost model's estimates (``diffops.codegen.emit``), which is how its constants
were chosen.

Run it alone on the machine (the lock keeps two timing jobs apart)::

    LOCK=/tmp/diffops-timing.lock
    flock $LOCK .venv/bin/python -m benchmarks.codegen_timing
    flock $LOCK .venv/bin/python -m benchmarks.codegen_timing --calibrate
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

os.environ.setdefault("DIFFOPS_CODEGEN_CACHE", "off")
sys.stdout.reconfigure(line_buffering=True)

from diffops import models  # noqa: E402
from diffops.timing import calibrate, time_batch  # noqa: E402

Call = Callable[[], Any]


def interleaved(
    calls: dict[str, Call], repeats: int, batch_s: float
) -> dict[str, float]:
    """Median seconds per call of each, batches interleaved (rotating order)."""
    loops = {name: calibrate(call, batch_s)[0] for name, call in calls.items()}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples[name].append(time_batch(calls[name], loops[name]) / loops[name])
    return {name: statistics.median(s) for name, s in samples.items()}


def report(title: str, times: dict[str, float], base: str) -> None:
    print(f"\n{title}")
    for name, t in times.items():
        print(f"  {name:<28} {t * 1e6:9.2f} us   {t / times[base]:6.2f}x {base}")


def _jax_program(op_name: str, func: Callable[..., Any], x: np.ndarray):
    """(main jaxpr, closure jaxpr or None, residual count) of a diffops jax operator."""
    import jax

    from diffops.backends import jax as djax
    from diffops.operators import OPERATORS, shape_of

    op = djax.JAX.operator(op_name, func)
    captured = {}

    def main(x):
        leaves, treedef = jax.tree_util.tree_flatten(op(x))
        captured["treedef"] = treedef
        return leaves

    closed = jax.make_jaxpr(main)(x)
    closure = OPERATORS[op_name].closure
    if closure is None:
        return closed, None, 0
    closure_def = captured["treedef"].children()[0]
    n = closure_def.num_leaves
    f_shape = jax.eval_shape(func, x).shape
    arg = jax.ShapeDtypeStruct(shape_of(closure.arg, x.shape, tuple(f_shape)), x.dtype)

    def apply(*rv):
        *residuals, v = rv
        return jax.tree_util.tree_unflatten(closure_def, residuals)(v)

    res = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in closed.out_avals[:n]]
    return closed, jax.make_jaxpr(apply)(*res, arg), n


def _jit(op_name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    import jax

    from diffops.backends import jax as djax

    return jax.jit(djax.JAX.operator(op_name, func))


def banana_case(repeats: int, batch_s: float) -> dict[str, float]:
    import jax
    import symnum

    from diffops import codegen

    model = models.MODELS["banana"]
    x = np.array([0.3, -0.7])
    f_jax, _ = model.function("jax")
    f_sym, _ = model.function("symnum")
    with jax.enable_x64(True):
        closed, _, _ = _jax_program("hessian_grad_and_value", f_jax, x)
        jitted = _jit("hessian_grad_and_value", f_jax)
        jitted(x)
    generated = codegen.generate(closed, "banana_hgv", cache=False)
    sym = symnum.hessian(f_sym, return_aux=True)

    def numpy_call():
        return model.second(x), model.first(x), model.value(x)

    def jit_call():
        return tuple(np.asarray(o) for o in jitted(x))

    want = numpy_call()
    for got in (generated(x), jit_call(), sym(x)):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12)
    times = interleaved(
        {
            "hand-written NumPy": numpy_call,
            "SymNum generated": lambda: sym(x),
            "jax.jit": jit_call,
            f"codegen ({generated.mode})": lambda: generated(x),
        },
        repeats,
        batch_s,
    )
    report(
        "banana: value + gradient + Hessian (float64, d = 2)",
        times,
        "hand-written NumPy",
    )
    return times


def torus_case(repeats: int, batch_s: float) -> dict[str, dict[str, float]]:
    import jax
    import symnum

    from diffops import codegen

    model = models.MODELS["torus"]
    x = np.array([0.8, -0.5, 0.3])
    m = np.array([[0.7, -1.2, 0.4]])
    f_jax, _ = model.function("jax")
    f_sym, _ = model.function("symnum")
    with jax.enable_x64(True):
        closed_jv, _, _ = _jax_program("jacobian_and_value", f_jax, x)
        closed_mhp, closed_apply, n = _jax_program("mhp_jacobian_and_value", f_jax, x)
        jit_jv = _jit("jacobian_and_value", f_jax)
        jit_mhp = _jit("mhp_jacobian_and_value", f_jax)
        apply_jit = jax.jit(lambda c, v: c(v))
        closure = jit_mhp(x)[0]
        apply_jit(closure, m)
        jit_jv(x)
    gen_jv = codegen.generate(closed_jv, "torus_jv", cache=False)
    # The residuals travel packed: one flat tuple from main to apply.
    gen_mhp = codegen.generate(closed_mhp, "torus_mhp", cache=False, packed_outputs=n)
    gen_apply = codegen.generate(
        closed_apply, "torus_mhp_apply", cache=False, packed_inputs=n
    )
    packed = gen_mhp(x)[0]
    sym_jv = symnum.jacobian(f_sym, return_aux=True)
    sym_mhp = symnum.matrix_hessian_product(f_sym, return_aux=True)
    sym_closure = sym_mhp(x)[0]

    def numpy_jv():
        return model.first(x), model.value(x)

    def numpy_apply():
        # As a NumPy user writes it: the Hessian's contraction with m.
        return np.tensordot(m, model.second(x), axes=2)

    def jit_jv_call():
        return tuple(np.asarray(o) for o in jit_jv(x))

    def jit_apply_call():
        return np.asarray(apply_jit(closure, m))

    want = numpy_apply()
    for got in (gen_apply(packed, m)[0], jit_apply_call(), sym_closure(m)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    jv = interleaved(
        {
            "hand-written NumPy": numpy_jv,
            "SymNum generated": lambda: sym_jv(x),
            "jax.jit": jit_jv_call,
            f"codegen ({gen_jv.mode})": lambda: gen_jv(x),
        },
        repeats,
        batch_s,
    )
    report("torus: Jacobian + value (float64, 3 -> 1)", jv, "hand-written NumPy")
    mhp = interleaved(
        {
            "hand-written NumPy": numpy_apply,
            "SymNum generated": lambda: sym_closure(m),
            "jax.jit": jit_apply_call,
            f"codegen ({gen_apply.mode})": lambda: gen_apply(packed, m),
        },
        repeats,
        batch_s,
    )
    report("torus: MHP closure applied to m (1 x 3)", mhp, "hand-written NumPy")
    main = interleaved(
        {
            "hand-written NumPy": lambda: (lambda v: numpy_apply(), *numpy_jv()),
            "SymNum generated": lambda: sym_mhp(x),
            "jax.jit (closure kept on device)": lambda: jit_mhp(x),
            f"codegen ({gen_mhp.mode})": lambda: gen_mhp(x),
        },
        repeats,
        batch_s,
    )
    report(
        "torus: mhp_jacobian_and_value (closure residuals + Jacobian + value)",
        main,
        "hand-written NumPy",
    )
    return {"jacobian": jv, "mhp_apply": mhp, "mhp_main": main}


def first_call_case(repeats: int) -> None:
    """Trace + emit + exec against jax.jit's trace + compile, fresh each time."""
    import jax

    from diffops import codegen
    from diffops.backends import jax as djax

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
    print(
        "\nfirst call: trace + generate + exec vs jax.jit trace + compile (ms, median)"
    )
    for title, (op_name, func, x) in programs.items():
        gen_t, jit_t, emit_t = [], [], []
        mode = ""
        for _ in range(repeats):
            with jax.enable_x64(True):
                start = time.perf_counter()
                closed = jax.make_jaxpr(djax.JAX.operator(op_name, func))(x)
                mid = time.perf_counter()
                g = codegen.generate(closed, "first", cache=False)
                g(x)
                end = time.perf_counter()
                gen_t.append(end - start)
                emit_t.append(end - mid)
                mode = g.mode
                start = time.perf_counter()
                compiled = jax.jit(djax.JAX.operator(op_name, func)).lower(x).compile()
                jit_t.append(time.perf_counter() - start)
                del compiled
        g_ms, j_ms = statistics.median(gen_t) * 1e3, statistics.median(jit_t) * 1e3
        e_ms = statistics.median(emit_t) * 1e3
        print(
            f"  {title:<40} codegen {g_ms:7.1f} ms (emit+exec {e_ms:6.1f}, "
            f"{mode})   jax.jit {j_ms:7.1f} ms   ratio {g_ms / j_ms:5.2f}"
        )


def logistic_case(repeats: int, batch_s: float, dim: int = 1000) -> None:
    import jax

    from diffops import codegen

    model = models.logistic_model(dim, 2 * dim)
    f, _ = model.function("jax")
    x = np.linspace(-0.3, 0.3, dim) / np.sqrt(dim)
    with jax.enable_x64(True):
        closed, _, _ = _jax_program("hessian_grad_and_value", f, x)
        jitted = _jit("hessian_grad_and_value", f)
        jitted(x)
    generated = codegen.generate(closed, "logistic_hgv", cache=False)

    def jit_call():
        return tuple(np.asarray(o) for o in jitted(x))

    want = (model.second(x), model.first(x), model.value(x))
    for got in (generated(x), jit_call()):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)
    times = interleaved(
        {
            "jax.jit": jit_call,
            "hand-written NumPy": lambda: (
                model.second(x),
                model.first(x),
                model.value(x),
            ),
            f"codegen ({generated.mode})": lambda: generated(x),
        },
        repeats,
        batch_s,
    )
    report(
        f"logistic regression d = {dim}, n = {2 * dim}: value + gradient + Hessian",
        times,
        "jax.jit",
    )


def calibrate_modes(repeats: int, batch_s: float) -> None:
    """Scalar against array mode, measured and as the cost model estimates them."""
    import jax

    from diffops import codegen
    from diffops.codegen.ir import from_jaxpr
    from diffops.codegen.simplify import simplify

    programs = []
    for d in (1, 2, 3, 4, 6, 8, 12, 16, 24):
        programs.append((f"logistic hessian d={d}", "hessian_grad_and_value", d))
    for d in (2, 4, 8, 16, 32, 64):
        programs.append((f"logistic grad d={d}", "grad_and_value", d))
    print("\ncalibration: per-call us, measured (model estimate)")
    print(f"  {'program':<28} {'scalar':>18} {'array':>18}  auto picks")
    for title, op_name, d in programs:
        model = models.logistic_model(d, 2 * d)
        f, _ = model.function("jax")
        x = np.linspace(-0.3, 0.3, d)
        with jax.enable_x64(True):
            closed, _, _ = _jax_program(op_name, f, x)
        gens = {
            m: codegen.generate(closed, "cal", mode=m, cache=False)
            for m in ("scalar", "array")
        }
        auto = codegen.generate(closed, "cal", cache=False).mode
        times = interleaved(
            {m: (lambda g=g, x=x: g(x)) for m, g in gens.items()}, repeats, batch_s
        )
        estimate = _estimates(simplify(from_jaxpr(closed)))
        print(
            f"  {title:<28} {times['scalar'] * 1e6:8.1f} ({estimate['scalar']:7.1f}) "
            f"{times['array'] * 1e6:8.1f} ({estimate['array']:7.1f})  {auto}"
        )


def _estimates(program: Any) -> dict[str, float]:
    from diffops.codegen import emit
    from diffops.codegen.module import Module
    from diffops.codegen.scalar_function import emit_scalar_function

    module = Module("estimate")
    stats = emit_scalar_function(module, program, "f", "f_array", 10**7)
    scalar_ns = (
        emit.SCALAR_CALL_NS * (1 + len(program.outputs))
        + emit.SCALAR_STATEMENT_NS * stats.statements
        + emit.SCALAR_BRIDGE_NS * stats.bridges
        + emit.SCALAR_ELEMENT_NS * (stats.unpacked + stats.packed)
    )
    return {"scalar": scalar_ns / 1e3, "array": emit.array_cost_ns(program) / 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter batches")
    parser.add_argument(
        "--calibrate", action="store_true", help="scalar vs array sweep"
    )
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 21)
    batch_s = 0.01 if args.quick else 0.03
    import jax

    jax.config.update("jax_enable_x64", True)  # raw jax.jit at its fastest
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"jax {jax.__version__}"
    )
    if args.calibrate:
        calibrate_modes(repeats, batch_s)
        return 0
    banana_case(repeats, batch_s)
    torus_case(repeats, batch_s)
    first_call_case(3 if args.quick else 7)
    logistic_case(max(3, repeats // 3), batch_s * 3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
