"""diffops.codegen: JAX programs as generated NumPy code, checked against JAX.

Three oracles: JAX's own evaluation of the same jaxpr (every case), the primitive
table (every translated primitive has a case here that produces it), and the
generated source itself (imports only ``math`` and ``numpy``; runs where importing
``jax`` fails).
"""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from _backends import require_backend

require_backend("jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402
from jax.extend.core import jaxpr_as_fun  # noqa: E402

from diffops import codegen  # noqa: E402
from diffops.codegen.primitives import IDENTITY, RULES  # noqa: E402

MODES = ("scalar", "array")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test writes its cache records into its own directory."""
    monkeypatch.setenv("DIFFOPS_CODEGEN_CACHE", str(tmp_path / "cache"))


def tolerance(dtype: Any) -> float:
    """Relative tolerance against JAX: float64 to 1e-13, float32 to 2e-6."""
    return 1e-13 if np.dtype(dtype) == np.float64 else 2e-6


def assert_matches(got: Any, want: Any, what: str = "") -> None:
    """Each output equal in shape and dtype, values close (relative to the scale)."""
    got, want = list(got), list(want)
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        w = np.asarray(w)
        # 0-d outputs are NumPy scalars, as NumPy's reductions return them.
        expected = np.generic if w.ndim == 0 else np.ndarray
        assert isinstance(g, expected), f"{what} output {i}: {type(g)}"
        assert g.shape == w.shape, f"{what} output {i}: {g.shape} != {w.shape}"
        assert g.dtype == w.dtype, f"{what} output {i}: {g.dtype} != {w.dtype}"
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w, err_msg=f"{what} output {i}")
            continue
        rtol = tolerance(w.dtype)
        finite = np.isfinite(w)
        scale = max(1.0, float(np.max(np.abs(w[finite]), initial=0.0)))
        np.testing.assert_allclose(
            g, w, rtol=rtol, atol=rtol * scale, err_msg=f"{what} output {i}"
        )


def jax_result(closed: Any, args: list[np.ndarray]) -> list[np.ndarray]:
    """JAX's own evaluation of the jaxpr, compiled."""
    return [np.asarray(o) for o in jax.jit(jaxpr_as_fun(closed))(*args)]


def check_program(
    fun: Callable[..., Any],
    args: list[np.ndarray],
    *,
    modes: tuple[str, ...] = ("auto", *MODES),
    primitive: str | None = None,
) -> list[codegen.Generated]:
    """Trace ``fun`` at ``args``; every mode's generated output matches JAX's."""
    x64 = any(np.asarray(a).dtype.itemsize == 8 for a in args)
    with jax.enable_x64(x64):
        closed = jax.make_jaxpr(fun)(*args)
        want = jax_result(closed, args)
    generated = []
    for mode in modes:
        g = codegen.generate(closed, f"case_{mode}", mode=mode, cache=False)
        if primitive is not None:
            assert primitive in g.primitives_used, (primitive, g.primitives_used)
        if mode != "auto":
            assert g.mode == mode
        assert_matches(g(*[np.asarray(a) for a in args]), want, f"{mode} mode")
        generated.append(g)
    return generated


# ---------------------------------------------------------------------------------
# (1) The primitive table: one case per translated primitive

RNG_SEED = 20260520


def _x(shape=(2, 3), low=-2.0, high=2.0):
    return ("uniform", shape, low, high)


def _i(shape=(2, 3), low=-5, high=6):
    return ("int", shape, low, high)


def _make(spec: Any, dtype: Any, rng: np.random.Generator) -> np.ndarray:
    kind, shape, low, high = spec
    if kind == "int":
        return rng.integers(low, high, size=shape).astype(np.int32)
    return rng.uniform(low, high, size=shape).astype(dtype)


IDX = np.array([2, 0, 1, 2], dtype=np.int32)
BAD_IDX = np.array(
    [1, 7, -9, 0], dtype=np.int32
)  # out of bounds on purpose (clip / fill / drop)

# primitive: (function, argument specs)
PRIMITIVE_CASES: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
    "neg": (lambda x: -x, (_x(),)),
    "add": (lambda x, y: x + y, (_x(), _x())),
    "add_any": (jax.grad(lambda x: jnp.sum(x * jnp.sin(x))), (_x(),)),
    "sub": (lambda x, y: x - y, (_x(), _x())),
    "mul": (lambda x, y: x * y, (_x(), _x())),
    "div": (lambda x, y, i, j: (x / y, i // j, i / 3), (_x(), _x(), _i(), _i(low=1))),
    "rem": (lambda x, y, i, j: (jnp.fmod(x, y), i % j), (_x(), _x(), _i(), _i(low=1))),
    "pow": (lambda x, y: x**y, (_x(low=0.1), _x())),
    "integer_pow": (
        lambda x: (x**2, x**3, x ** (-2), x**5, x**12, x ** (-3)),
        (_x(low=0.5),),
    ),
    "square": (jnp.square, (_x(),)),
    "exp": (jnp.exp, (_x(),)),
    "exp2": (jnp.exp2, (_x(),)),
    "log": (jnp.log, (_x(low=0.1),)),
    "log1p": (jnp.log1p, (_x(low=-0.5),)),
    "expm1": (jnp.expm1, (_x(),)),
    "sin": (jnp.sin, (_x(),)),
    "cos": (jnp.cos, (_x(),)),
    "tan": (jnp.tan, (_x(low=-1.2, high=1.2),)),
    "asin": (jnp.arcsin, (_x(low=-0.9, high=0.9),)),
    "acos": (jnp.arccos, (_x(low=-0.9, high=0.9),)),
    "atan": (jnp.arctan, (_x(),)),
    "atan2": (jnp.arctan2, (_x(), _x())),
    "sinh": (jnp.sinh, (_x(),)),
    "cosh": (jnp.cosh, (_x(),)),
    "tanh": (jnp.tanh, (_x(),)),
    "asinh": (jnp.arcsinh, (_x(),)),
    "acosh": (jnp.arccosh, (_x(low=1.1, high=3.0),)),
    "atanh": (jnp.arctanh, (_x(low=-0.9, high=0.9),)),
    "sqrt": (jnp.sqrt, (_x(low=0.1),)),
    "rsqrt": (lax.rsqrt, (_x(low=0.1),)),
    "cbrt": (jnp.cbrt, (_x(),)),
    "logistic": (jax.nn.sigmoid, (_x(low=-8, high=8),)),
    "erf": (jax.scipy.special.erf, (_x(),)),
    "erfc": (jax.scipy.special.erfc, (_x(),)),
    "erf_inv": (jax.scipy.special.erfinv, (_x(low=-0.95, high=0.95),)),
    "lgamma": (jax.scipy.special.gammaln, (_x(low=0.2, high=6.0),)),
    "digamma": (jax.scipy.special.digamma, (_x(low=0.2, high=9.0),)),
    "abs": (lambda x, i: (jnp.abs(x), jnp.abs(i)), (_x(), _i())),
    "sign": (lambda x, i: (jnp.sign(x), jnp.sign(i)), (_x(), _i())),
    "floor": (jnp.floor, (_x(low=-5, high=5),)),
    "ceil": (jnp.ceil, (_x(low=-5, high=5),)),
    "round": (
        lambda x: (
            jnp.round(x * 2) / 2,
            lax.round(x * 2, lax.RoundingMethod.AWAY_FROM_ZERO),
        ),
        (_x(low=-5, high=5),),
    ),
    "is_finite": (lambda x: jnp.isfinite(jnp.log(x)), (_x(),)),
    "nextafter": (jnp.nextafter, (_x(), _x())),
    "max": (lambda x, y, i: (jnp.maximum(x, y), jnp.maximum(i, 1)), (_x(), _x(), _i())),
    "min": (lambda x, y, i: (jnp.minimum(x, y), jnp.minimum(i, 1)), (_x(), _x(), _i())),
    "clamp": (lambda x: lax.clamp(-0.5, x, 0.7), (_x(),)),
    "select_n": (
        lambda x, y, i: (
            jnp.where(x > y, x, y),
            lax.select_n(jnp.abs(i) % 3, x, y, x * y),
        ),
        (_x(), _x(), _i()),
    ),
    "convert_element_type": (
        lambda x, i: (
            (x * 3).astype(jnp.int32),
            i.astype(x.dtype) * x,
            (x > 0).astype(x.dtype),
            (i != 0).astype(jnp.int32),
        ),
        (_x(), _i()),
    ),
    "reduce_precision": (lambda x: lax.reduce_precision(x, 8, 23) * x, (_x(),)),
    "not": (lambda x, i: (~(x > 0), ~i), (_x(), _i())),
    "and": (lambda x, i, j: ((x > 0) & (x < 1), i & j), (_x(), _i(), _i())),
    "or": (lambda x, i, j: ((x > 0) | (x < -1), i | j), (_x(), _i(), _i())),
    "xor": (lambda x, i, j: ((x > 0) ^ (x < 1), i ^ j), (_x(), _i(), _i())),
    "eq": (lambda x, y, i: (x == y, i == 2), (_x(), _x(), _i())),
    "ne": (lambda x, y, i: (x != y, i != 2), (_x(), _x(), _i())),
    "lt": (lambda x, y: x < y, (_x(), _x())),
    "le": (lambda x, y: x <= y, (_x(), _x())),
    "gt": (lambda x, y: x > y, (_x(), _x())),
    "ge": (lambda x, y: x >= y, (_x(), _x())),
    "broadcast_in_dim": (
        lambda x, s: (x[:, None, :] * jnp.ones((2, 4, 3)), s + jnp.zeros(3)),
        (_x(), _x(())),
    ),
    "reshape": (lambda x: x.reshape(3, 2) * 2, (_x(),)),
    "squeeze": (lambda x: jnp.squeeze(x[:, :1]), (_x(),)),
    "transpose": (lambda x: x.T * jnp.arange(3.0)[:, None], (_x(),)),
    "slice": (lambda x: (x[1:, ::2], x[:, 1:2]), (_x((3, 5)),)),
    "rev": (lambda x: (x[::-1], jnp.flip(x, 1)), (_x(),)),
    "concatenate": (lambda x, y: jnp.concatenate([x, y * 2, x], axis=1), (_x(), _x())),
    "pad": (
        lambda x: (
            jnp.pad(x, ((1, 0), (2, 1))),
            lax.pad(x, 1.5, ((1, -1, 1), (-1, 2, 2))),
        ),
        (_x(),),
    ),
    "dynamic_slice": (
        lambda x, i: (
            lax.dynamic_slice(x, (i[0, 0], i[0, 0] * 0 + 1), (2, 2)),
            lax.dynamic_slice(x, (1, 1), (1, 2)),
        ),
        (_x((3, 4)), _i((1, 1), -3, 5)),
    ),
    "dynamic_update_slice": (
        lambda x, u, i: (
            lax.dynamic_update_slice(x, u, (i[0, 0], i[0, 0] * 0 + 2)),
            lax.dynamic_update_slice(x, u * 2, (0, 1)),
        ),
        (_x((3, 4)), _x((2, 2)), _i((1, 1), -3, 5)),
    ),
    "gather": (
        lambda x, i: (
            x[:, IDX],
            x[IDX % 2],
            jnp.take(x, i[0], axis=1, mode="clip"),
            jnp.take(x, jnp.asarray(BAD_IDX), axis=1, mode="fill", fill_value=-1.0),
            jnp.take_along_axis(x, jnp.abs(i) % 3, axis=1),
            jax.vmap(lambda r, j: r[j])(x, jnp.abs(i) % 3),
        ),
        (_x((2, 3)), _i((2, 4), -2, 3)),
    ),
    "scatter": (
        lambda x, v: (
            x.at[0, 1].set(v[0]),
            x.at[:, jnp.array([2, 0])].set(v.reshape(2, 1)),
        ),
        (_x(), _x((2,))),
    ),
    "scatter-add": (
        lambda x, v, i: (
            x.at[:, IDX].add(v),
            x.at[i[0]].add(x[0], mode="drop"),
            jax.grad(lambda y: jnp.sum(jnp.sin(y[:, IDX])))(x),
        ),
        (_x(), _x((2, 4)), _i((1,), -3, 3)),
    ),
    "scatter-mul": (lambda x, v: x.at[:, IDX].multiply(v), (_x(), _x((2, 4)))),
    "scatter-min": (lambda x, v: x.at[:, IDX].min(v), (_x(), _x((2, 4)))),
    "scatter-max": (lambda x, v: x.at[:, IDX].max(v), (_x(), _x((2, 4)))),
    "iota": (lambda x: x * jnp.arange(3.0) + lax.iota(jnp.int32, 3), (_x(),)),
    "split": (lambda x: tuple(jnp.split(x, [1, 2], axis=1)), (_x((2, 4)),)),
    "stack": (lambda x, y: jnp.stack([x, y, x * y], axis=1), (_x(), _x())),
    "unstack": (
        lambda x: (
            *lax.unstack(x, axis=1),
            jax.grad(lambda y: jnp.stack([y, y**2]).sum())(x),
        ),
        (_x((3, 2)),),
    ),
    "reduce_sum": (
        lambda x, i: (jnp.sum(x), jnp.sum(x, axis=0), jnp.sum(i, axis=1)),
        (_x((2, 3, 4)), _i()),
    ),
    "reduce_prod": (lambda x: (jnp.prod(x), jnp.prod(x, axis=1)), (_x(),)),
    "reduce_max": (lambda x: (jnp.max(x), jnp.max(x, axis=1)), (_x(),)),
    "reduce_min": (lambda x: (jnp.min(x), jnp.min(x, axis=0)), (_x(),)),
    "reduce_and": (lambda x: (jnp.all(x > 0), jnp.all(x > -1, axis=1)), (_x(),)),
    "reduce_or": (lambda x: (jnp.any(x > 1), jnp.any(x > 0, axis=0)), (_x(),)),
    "reduce_xor": (
        lambda x: lax.reduce(x > 0, False, lax.bitwise_xor, (1,)),
        (_x(),),
    ),
    "argmax": (lambda x: (jnp.argmax(x), jnp.argmax(x, axis=1)), (_x(),)),
    "argmin": (lambda x: (jnp.argmin(x), jnp.argmin(x, axis=0)), (_x(),)),
    "cumsum": (
        lambda x: (jnp.cumsum(x, axis=1), lax.cumsum(x, axis=0, reverse=True)),
        (_x(),),
    ),
    "cumprod": (
        lambda x: (jnp.cumprod(x, axis=1), lax.cumprod(x, reverse=True)),
        (_x(),),
    ),
    "cummax": (lambda x: (lax.cummax(x, axis=1), lax.cummax(x, reverse=True)), (_x(),)),
    "cummin": (lambda x: lax.cummin(x, axis=1), (_x(),)),
    "cumlogsumexp": (lambda x: lax.cumlogsumexp(x, axis=1), (_x(),)),
    "dot_general": (
        lambda a, b, v, t: (
            a @ b,
            a.T @ a,
            a @ v,
            v @ b,
            v @ v,
            jnp.outer(v, v),
            jnp.einsum("ij,ij->i", a, a),
            jnp.einsum("bij,bjk->bik", t, t),
            jnp.einsum("ijk,kj->i", t, a),
            jnp.einsum("ijk,j->ki", t, v),
        ),
        (_x((3, 3)), _x((3, 4)), _x((3,)), _x((3, 3, 3))),
    ),
    "sort": (lambda x: (jnp.sort(x, axis=1), jnp.argsort(x, axis=0)), (_x((3, 4)),)),
    "top_k": (lambda x: lax.top_k(x, 2), (_x((3, 4)),)),
    "cond": (
        lambda x: (
            lax.cond(x[0, 0] > 0, lambda y: y * 2, lambda y: jnp.sin(y), x),
            lax.switch(1, [jnp.sin, jnp.cos, jnp.tan], x),
        ),
        (_x(),),
    ),
    "while": (
        lambda x: (
            lax.fori_loop(0, 3, lambda i, c: c * x + i, x),
            lax.while_loop(
                lambda c: c[0] < 4.0,
                lambda c: (c[0] + x[0, 0] ** 2 + 0.5, c[1] * 1.1),
                (0.0, x),
            )[1],
        ),
        (_x(),),
    ),
    "scan": (
        lambda x: lax.scan(lambda c, xi: (c * 0.5 + xi, jnp.sin(c) * xi), x[0], x),
        (_x((4, 3)),),
    ),
    # identity primitives (removed before emission)
    "copy": (lambda x: jnp.array(x, copy=True) * 2, (_x(),)),
    "stop_gradient": (lambda x: lax.stop_gradient(x) * x, (_x(),)),
    "optimization_barrier": (
        lambda x: lax.optimization_barrier((x, x * 2))[1] + 1,
        (_x(),),
    ),
    "device_put": (lambda x: jax.device_put(x) * 2, (_x(),)),
}


def test_every_translated_primitive_has_a_case():
    assert set(PRIMITIVE_CASES) == set(RULES) | set(IDENTITY)
    assert codegen.supported() == frozenset(RULES) | IDENTITY


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("primitive", sorted(PRIMITIVE_CASES))
def test_primitive_matches_jax(primitive, dtype):
    fun, specs = PRIMITIVE_CASES[primitive]
    rng = np.random.default_rng([RNG_SEED, sorted(PRIMITIVE_CASES).index(primitive)])
    args = [_make(spec, dtype, rng) for spec in specs]
    check_program(fun, args, primitive=primitive)


# ---------------------------------------------------------------------------------
# (2) Whole derivative programs: diffops' JAX operators, flattened to arrays
#
# The adapter proposal in miniature: an operator's outputs are flattened with
# jax.tree_util (a closure, a jax.tree_util.Partial, flattens to its residual
# arrays), so one generated function computes every array and every residual, and a
# second generated function applies the closure: (residuals, v) -> product.

from diffops.backends import jax as djax  # noqa: E402
from diffops.models import logistic_data  # noqa: E402
from diffops.operators import ALL_DIFF_OPS, OPERATORS, shape_of  # noqa: E402

GATHER_IDX = np.array([3, 0, 2, 2, 1], dtype=np.int32)


def banana(x):
    return -(x[0] ** 2) / 2 - (x[1] - x[0] ** 2) ** 2


def torus(x):
    r = jnp.sqrt(x[0] ** 2 + x[1] ** 2)
    return jnp.stack([(r - 1) ** 2 + x[2] ** 2 - 0.25])


def logistic(beta, design, labels):
    z = design @ beta
    return jnp.sum(labels * z - jnp.log1p(jnp.exp(z))) - jnp.sum(beta**2) / 2


def gathered(x):
    picked = x[GATHER_IDX] * jnp.arange(1.0, 6.0)
    updated = x.at[1].add(x[0] ** 2).at[GATHER_IDX[:2]].set(jnp.sin(x[2:4]))
    return jnp.sum(jnp.concatenate([picked, updated]) ** 3) + jnp.max(x) * x[3]


def gathered_vector(x):
    return jnp.concatenate([x[GATHER_IDX] ** 2, jnp.cumsum(x)[::2] * x[0]])


def zero_d(x):
    return jnp.sin(x) * x**2 + jnp.exp(-x)


def matrix_input(x):
    return jnp.sum(jnp.log1p(x**2) * jnp.cos(x)) + jnp.prod(x[:, 0]) * x[1, 2]


def matrix_vector(x):
    return jnp.tanh(x) @ jnp.array([1.0, -2.0, 0.5]) + x[:, 0] * x[:, 1]


def _logistic_args(dim: int):
    design, labels = logistic_data(dim, 2 * dim)
    return (design, labels)


# name: (function, x, extra args, scalar-valued)
MODELS: dict[str, tuple[Callable[..., Any], np.ndarray, tuple[Any, ...], bool]] = {
    "banana": (banana, np.array([0.3, -0.7]), (), True),
    "torus": (torus, np.array([0.8, -0.5, 0.3]), (), False),
    "logistic5": (logistic, np.linspace(-0.5, 0.5, 5), _logistic_args(5), True),
    "logistic100": (logistic, np.linspace(-0.3, 0.3, 100), _logistic_args(100), True),
    "gather": (gathered, np.array([0.3, -0.7, 1.1, 0.4]), (), True),
    "gather_vector": (gathered_vector, np.array([0.3, -0.7, 1.1, 0.4]), (), False),
    "zero_d": (zero_d, np.array(0.7), (), True),
    "matrix": (matrix_input, np.array([[0.3, -0.7, 1.1], [0.4, 0.9, -1.3]]), (), True),
    "matrix_vector": (
        matrix_vector,
        np.array([[0.3, -0.7, 1.1], [0.4, 0.9, -1.3]]),
        (),
        False,
    ),
}


def operator_programs(op_name: str, func: Callable[..., Any], x: Any, *args: Any):
    """(main jaxpr, closure-application jaxpr or None, number of residuals).

    main: (x, *args) -> flat leaves of the operator's outputs (the closure's
    residuals first, then the arrays); closure application: (*residuals, v) ->
    the product.
    """
    op = djax.JAX.operator(op_name, func)
    captured = {}

    def main(x, *args):
        leaves, treedef = jax.tree_util.tree_flatten(op(x, *args))
        captured["treedef"] = treedef
        return leaves

    closed_main = jax.make_jaxpr(main)(x, *args)
    closure = OPERATORS[op_name].closure
    if closure is None:
        return closed_main, None, 0
    closure_def = captured["treedef"].children()[0]
    n_residuals = closure_def.num_leaves
    value_shape = jax.eval_shape(lambda y: func(y, *args), x).shape
    arg_shape = shape_of(closure.arg, np.shape(x), tuple(value_shape))

    def apply(*residuals_and_v):
        *residuals, v = residuals_and_v
        return jax.tree_util.tree_unflatten(closure_def, residuals)(v)

    avals = [
        jax.ShapeDtypeStruct(a.shape, a.dtype)
        for a in closed_main.out_avals[:n_residuals]
    ]
    v_aval = jax.ShapeDtypeStruct(arg_shape, np.asarray(x).dtype)
    closed_apply = jax.make_jaxpr(apply)(*avals, v_aval)
    return closed_main, closed_apply, n_residuals


FLOAT32_MODELS = ("banana", "torus", "logistic5", "gather", "zero_d", "matrix")


def _program_cases():
    cases = []
    for model, (_, _, _, scalar) in MODELS.items():
        for op in ALL_DIFF_OPS:
            if OPERATORS[op].scalar_only and not scalar:
                continue
            cases.append((model, op, "float64"))
            if model in FLOAT32_MODELS:
                cases.append((model, op, "float32"))
    return cases


@pytest.mark.parametrize(("model", "op", "dtype"), _program_cases())
def test_derivative_program_matches_jax(model, op, dtype):
    func, x, args, _ = MODELS[model]
    dtype = np.dtype(dtype)
    x = np.asarray(x, dtype=dtype)
    args = tuple(np.asarray(a, dtype=dtype) for a in args)
    with jax.enable_x64(dtype == np.float64):
        closed_main, closed_apply, n_residuals = operator_programs(op, func, x, *args)
        want = jax_result(closed_main, [x, *args])
    modes = ("auto", *MODES) if x.size <= 10 else ("auto", "array")
    rng = np.random.default_rng(RNG_SEED)
    v = None
    if closed_apply is not None:
        v = rng.standard_normal(closed_apply.in_avals[-1].shape).astype(dtype)
        with jax.enable_x64(dtype == np.float64):
            want_product = jax_result(closed_apply, [*want[:n_residuals], v])
    for i, mode in enumerate(modes):
        main = codegen.generate(closed_main, f"{op}_{model}", mode=mode, cache=False)
        outputs = main(x, *args)
        assert_matches(outputs, want, f"{model} {op} {mode}")
        if closed_apply is None:
            continue
        apply = codegen.generate(closed_apply, f"apply_{op}", mode=mode, cache=False)
        residuals = list(outputs[:n_residuals])
        assert_matches(
            apply(*residuals, v), want_product, f"{model} {op} closure {mode}"
        )
        # The residuals packed into one flat sequence, between any two modes.
        packed_main = codegen.generate(
            closed_main, "main", mode=mode, cache=False, packed_outputs=n_residuals
        )
        other = modes[(i + 1) % len(modes)]
        packed_apply = codegen.generate(
            closed_apply, "apply", mode=other, cache=False, packed_inputs=n_residuals
        )
        packed, *arrays = packed_main(x, *args)
        assert_matches(arrays, want[n_residuals:], f"{model} {op} {mode} packed")
        flat = np.concatenate(
            [np.ravel(w).astype(np.float64) for w in want[:n_residuals]]
        )
        assert_matches(
            [np.asarray(packed, dtype=dtype)], [flat.astype(dtype)], "packed"
        )
        assert_matches(
            packed_apply(packed, v),
            want_product,
            f"{model} {op} closure, residuals packed by {mode}, applied by {other}",
        )


@pytest.mark.parametrize(
    ("model", "op"),
    [("banana", "hessian_grad_and_value"), ("torus", "mhp_jacobian_and_value")],
)
def test_vmapped_program_matches_jax(model, op):
    func, x, _, _ = MODELS[model]
    batch = np.stack([x * (1 + 0.1 * k) for k in range(5)])

    def batched(xs):
        return jax.vmap(
            lambda y: jax.tree_util.tree_leaves(djax.JAX.operator(op, func)(y))
        )(xs)

    check_program(batched, [batch])


# ---------------------------------------------------------------------------------
# (3) The generated source: what it imports, and running it without JAX


def _sample_generated() -> list[codegen.Generated]:
    """Scalar and array modules, with helpers, loops, branches and constants."""
    x = np.array([0.3, -0.7, 1.1, 0.4])
    programs = [
        (jax.hessian(gathered), (x,)),
        (PRIMITIVE_CASES["while"][0], (np.ones((2, 3)),)),
        (PRIMITIVE_CASES["scan"][0], (np.ones((4, 3)),)),
        (PRIMITIVE_CASES["cond"][0], (np.ones((2, 3)),)),
        (jax.grad(logistic), (np.zeros(5), *_logistic_args(5))),
    ]
    out = []
    with jax.enable_x64(True):
        for fun, args in programs:
            closed = jax.make_jaxpr(fun)(*args)
            for mode in MODES:
                out.append(codegen.generate(closed, "sample", mode=mode, cache=False))
    return out


def _imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or ".")
        elif isinstance(node, ast.Name) and node.id in ("__import__", "importlib"):
            names.add(node.id)
    return names


def test_generated_source_imports_only_numpy_and_math():
    samples = _sample_generated()
    assert {g.mode for g in samples} == {"scalar", "array"}
    assert any("def _gather" in g.source for g in samples)  # helpers copied in
    for g in samples:
        assert _imports(g.source) == {"math", "numpy"}, g.source


def _blocker(directory, *modules: str) -> str:
    """A directory whose ``<module>.py`` files raise ImportError on import."""
    directory.mkdir(exist_ok=True)
    for module in modules:
        (directory / f"{module}.py").write_text(
            f"raise ImportError('{module} is blocked in this test')\n"
        )
    return str(directory)


def _run_child(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_source_runs_with_numpy_alone(tmp_path):
    """exec of the source, where importing jax and diffops fails."""
    blocked = _blocker(tmp_path / "blocked", "jax", "diffops")
    x = np.array([0.3, -0.7, 1.1, 0.4])
    with jax.enable_x64(True):
        closed = jax.make_jaxpr(jax.hessian(gathered))(x)
        want = jax_result(closed, [x])
    for mode in MODES:
        g = codegen.generate(closed, "hessian_gathered", mode=mode, cache=False)
        (tmp_path / f"{mode}.py").write_text(g.source)
        out = tmp_path / f"{mode}.npy"
        _run_child(
            f"""
            import sys
            sys.path.insert(0, {blocked!r})
            import numpy as np
            namespace = {{}}
            exec(open({str(tmp_path / f"{mode}.py")!r}).read(), namespace)
            (h,) = namespace["hessian_gathered"](np.array({x.tolist()!r}))
            np.save({str(out)!r}, h)
            assert "jax" not in sys.modules and "diffops" not in sys.modules
            """
        )
        assert_matches([np.load(out)], want, mode)


def test_pickle_is_the_source_and_loads_without_jax(tmp_path):
    blocked = _blocker(tmp_path / "blocked", "jax")
    x = np.array([0.3, -0.7])
    with jax.enable_x64(True):
        closed, _, _ = operator_programs("hessian_grad_and_value", banana, x)
        want = jax_result(closed, [x])
    g = codegen.generate(closed, "hessian_banana", cache=False)
    data = pickle.dumps(g)
    assert g.source.encode() in data
    again = pickle.loads(data)
    assert again.source == g.source
    assert_matches(again(x), want, "unpickled")
    (tmp_path / "g.pkl").write_bytes(data)
    out = tmp_path / "out.npz"
    _run_child(
        f"""
        import pickle, sys
        sys.path.insert(0, {blocked!r})
        import numpy as np
        g = pickle.load(open({str(tmp_path / "g.pkl")!r}, "rb"))
        np.savez({str(out)!r}, *g(np.array({x.tolist()!r})))
        assert "jax" not in sys.modules
        """
    )
    saved = np.load(out)
    assert_matches([saved[f"arr_{i}"][()] for i in range(3)], want, "child")


def _fork_child(g, x, queue):
    queue.put(list(g(x)))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_runs_in_a_fork_child_after_the_parent_used_jax():
    import multiprocessing

    x = np.array([0.8, -0.5, 0.3])
    with jax.enable_x64(True):
        closed, _, _ = operator_programs("mhp_jacobian_and_value", torus, x)
        want = jax_result(closed, [x])  # the parent has computed with JAX
    g = codegen.generate(closed, "mhp_torus", cache=False)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_fork_child, args=(g, x, queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert_matches(got, want, "fork child")


def test_disk_cache_skips_emission(monkeypatch):
    from diffops.codegen import emit

    x = np.array([0.3, -0.7])
    with jax.enable_x64(True):
        closed = jax.make_jaxpr(jax.value_and_grad(banana))(x)
    first = codegen.generate(closed, "vg")
    directory = codegen.cache.cache_dir()
    assert list(directory.glob("j*.json"))

    def fail(*args, **kwargs):
        raise AssertionError("emitted again")

    monkeypatch.setattr(emit, "emit_module", fail)
    second = codegen.generate(closed, "vg")
    assert second.source == first.source
    assert_matches(second(x), first(x))


MODULE_WITH_FUNCTION = """
def potential(x):
    import jax.numpy as jnp

    return jnp.sum(jnp.sin(x) * x**2) + jnp.prod(jnp.cos(x))


def grad_potential(x):
    import jax

    return jax.grad(potential)(x)
"""


def test_function_key_skips_tracing_in_a_process_without_jax(tmp_path):
    (tmp_path / "user_model.py").write_text(MODULE_WITH_FUNCTION)
    sys.path.insert(0, str(tmp_path))
    try:
        import user_model
    finally:
        sys.path.remove(str(tmp_path))
    x = np.array([0.3, -0.7, 1.1])
    with jax.enable_x64(True):
        first = codegen.trace_and_generate(user_model.grad_potential, x)
        want = [np.asarray(user_model.grad_potential(x))]
    assert_matches(first(x), want)
    blocked = _blocker(tmp_path / "blocked", "jax")
    out = tmp_path / "out.npy"
    _run_child(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        sys.path.insert(0, {blocked!r})
        import numpy as np
        import user_model
        from diffops import codegen

        x = np.array({x.tolist()!r})
        g = codegen.trace_and_generate(user_model.grad_potential, x)
        np.save({str(out)!r}, g(x)[0])
        assert "jax" not in sys.modules
        """
    )
    assert_matches([np.load(out)], want, "cached in the child")
    # A changed function is traced again (and so needs JAX).
    (tmp_path / "user_model.py").write_text(
        MODULE_WITH_FUNCTION.replace("x**2", "x**3")
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {blocked!r}]; "
            "import numpy as np, user_model; from diffops import codegen; "
            "codegen.trace_and_generate(user_model.grad_potential, np.zeros(3))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "jax is blocked" in result.stderr


def test_function_key_follows_code_closures_and_globals():
    def make(scale):
        def f(x):
            return jnp.sum(jnp.sin(x) * scale)

        return f

    x = np.zeros(3)
    keys = {
        codegen.function_key(make(1.0), x),
        codegen.function_key(make(2.0), x),
        codegen.function_key(make(np.ones(3)), x),
        codegen.function_key(make(np.full(3, 2.0)), x),
        codegen.function_key(make(1.0), np.zeros(4)),
        codegen.function_key(make(1.0), np.zeros(3, np.float32)),
        codegen.function_key(lambda x: jnp.sum(jnp.cos(x)), x),
        codegen.function_key(djax.JAX.operator("grad_and_value", make(1.0)), x),
        codegen.function_key(djax.JAX.operator("grad_and_value", make(3.0)), x),
        codegen.function_key(jax.jit(make(4.0)), x),
        codegen.function_key(jax.jit(make(5.0)), x),
    }
    assert len(keys) == 11
    assert codegen.function_key(make(1.0), x) == codegen.function_key(make(1.0), x)


def test_unsupported_primitive_is_a_clear_error():
    x = np.eye(3) * 2.0
    with jax.enable_x64(True):
        closed = jax.make_jaxpr(lambda a: jnp.linalg.cholesky(a) * 2)(x)
    with pytest.raises(codegen.UnsupportedPrimitiveError) as info:
        codegen.generate(closed, "chol", cache=False)
    assert isinstance(info.value, NotImplementedError)
    assert "'cholesky'" in str(info.value)
    assert 'backend="jax"' in str(info.value)
    assert info.value.primitives == ["cholesky"]


def test_generated_repr_and_identifier():
    with jax.enable_x64(True):
        closed = jax.make_jaxpr(jax.grad(banana))(np.zeros(2))
    g = codegen.generate(closed, "grad of banana!", cache=False)
    assert g.name == "grad_of_banana_"
    assert repr(g).startswith("<Generated grad_of_banana_(float64[2]) -> (float64[2])")


def test_importing_codegen_does_not_import_jax():
    _run_child(
        """
        import sys
        import diffops.codegen
        assert "jax" not in sys.modules
        """
    )


@pytest.mark.parametrize(
    "x",
    [
        np.array([0.0, 0.0, 0.3]),  # r = 0: division by zero
        np.array([np.nan, 0.5, 0.3]),
        np.array([np.inf, 0.5, 0.3]),
        np.array([1e200, 1e200, 0.3]),  # overflow
    ],
)
def test_non_finite_values_follow_jax(x):
    """Scalar code hands non-finite inputs and results to the array code (IEEE)."""
    with jax.enable_x64(True):
        closed, _, _ = operator_programs("mhp_jacobian_and_value", torus, x)
        want = jax_result(closed, [x])
    assert not all(np.all(np.isfinite(w)) for w in want)
    for mode in MODES:
        g = codegen.generate(closed, "torus", mode=mode, cache=False)
        got = g(x)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=mode)
            np.testing.assert_allclose(a, b, rtol=1e-13, err_msg=mode)
