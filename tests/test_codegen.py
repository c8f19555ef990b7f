"""diffops.codegen: JAX programs as generated NumPy code, checked against JAX.

Three oracles: JAX's own evaluation of the same jaxpr (every case), the primitive
table (every translated primitive has a case here that produces it), and the
generated source itself (imports only ``math`` and ``numpy``; runs where importing
``jax`` fails).
"""

from __future__ import annotations

import ast
import os
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
        assert isinstance(g, np.ndarray), f"{what} output {i}: {type(g)}"
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
BAD_IDX = np.array([1, 7, -9, 0], dtype=np.int32)  # out of bounds on purpose (clip / fill / drop)

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
        lambda x: (jnp.round(x * 2) / 2, lax.round(x * 2, lax.RoundingMethod.AWAY_FROM_ZERO)),
        (_x(low=-5, high=5),),
    ),
    "is_finite": (lambda x: jnp.isfinite(jnp.log(x)), (_x(),)),
    "nextafter": (jnp.nextafter, (_x(), _x())),
    "max": (lambda x, y, i: (jnp.maximum(x, y), jnp.maximum(i, 1)), (_x(), _x(), _i())),
    "min": (lambda x, y, i: (jnp.minimum(x, y), jnp.minimum(i, 1)), (_x(), _x(), _i())),
    "clamp": (lambda x: lax.clamp(-0.5, x, 0.7), (_x(),)),
    "select_n": (
        lambda x, y, i: (jnp.where(x > y, x, y), lax.select_n(jnp.abs(i) % 3, x, y, x * y)),
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
        lambda x, v: (x.at[0, 1].set(v[0]), x.at[:, jnp.array([2, 0])].set(v.reshape(2, 1))),
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
        lambda x: (*lax.unstack(x, axis=1), jax.grad(lambda y: jnp.stack([y, y**2]).sum())(x)),
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
    "cumsum": (lambda x: (jnp.cumsum(x, axis=1), lax.cumsum(x, axis=0, reverse=True)), (_x(),)),
    "cumprod": (lambda x: (jnp.cumprod(x, axis=1), lax.cumprod(x, reverse=True)), (_x(),)),
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
            lax.while_loop(lambda c: c[0] < 4.0, lambda c: (c[0] + x[0, 0] ** 2 + 0.5, c[1] * 1.1), (0.0, x))[1],
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
    "optimization_barrier": (lambda x: lax.optimization_barrier((x, x * 2))[1] + 1, (_x(),)),
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
