"""Test cases as data, and a session-wide cache of built derivative functions.

A case is a model from :mod:`diffops.models` at one input shape. Derivative functions
are built once per (backend, model, shape, operator) and their outputs at the seeded
test points are computed once, so the closed-form, finite-difference and
cross-backend tests share the (slow) JAX compilation and SymNum code generation.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import diffops
from _backends import SELECTED_BACKENDS
from diffops.models import MODELS, SHAPED_MODELS, Model, applicable_ops, logistic_model

SEED = 20261122
N_POINTS = 3
SHAPES = ((), (3,), (2, 3))


@dataclass(frozen=True)
class Case:
    """A model at one input shape."""

    id: str
    model: Model
    shape: tuple[int, ...]

    @property
    def ops(self) -> tuple[str, ...]:
        return applicable_ops(self.model)

    def runs_on(self, backend: str) -> bool:
        return backend not in self.model.skip


def shape_id(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "0d"


SMALL_LOGISTIC = logistic_model(dim=5, n_data=8)

CASES: tuple[Case, ...] = (
    *(Case(name, model, model.shape) for name, model in MODELS.items()),
    Case(SMALL_LOGISTIC.name, SMALL_LOGISTIC, SMALL_LOGISTIC.shape),
    *(
        Case(f"{name}-{shape_id(shape)}", model, shape)
        for name, model in SHAPED_MODELS.items()
        for shape in SHAPES
    ),
)
CASES_BY_ID = {case.id: case for case in CASES}


def rng_for(*key: object) -> np.random.Generator:
    """A generator seeded by ``SEED`` and a stable hash of ``key``."""
    words = [zlib.crc32(repr(k).encode()) for k in key]
    return np.random.default_rng([SEED, *words])


def points(case: Case) -> list[np.ndarray]:
    """``N_POINTS`` seeded float64 test points of the case's shape."""
    rng = rng_for("points", case.id)
    return [
        np.asarray(case.model.sample(rng, case.shape), dtype=np.float64)
        for _ in range(N_POINTS)
    ]


# ---------------------------------------------------------------------------------
# Parametrisation


def backend_case_op_params(
    backends: tuple[str, ...] = SELECTED_BACKENDS,
    cases: tuple[Case, ...] = CASES,
) -> list[Any]:
    """``pytest.param(backend, case, op)`` for every applicable combination."""
    return [
        pytest.param(backend, case, op, id=f"{backend}-{case.id}-{op}")
        for backend in backends
        for case in cases
        if case.runs_on(backend)
        for op in case.ops
    ]


def case_op_params(cases: tuple[Case, ...] = CASES) -> list[Any]:
    return [
        pytest.param(case, op, id=f"{case.id}-{op}")
        for case in cases
        for op in case.ops
    ]


# ---------------------------------------------------------------------------------
# Cache

_DERIVATIVES: dict[tuple[Any, ...], diffops.DerivativeFunction] = {}
_OUTPUTS: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_FAILURES: dict[tuple[Any, ...], BaseException] = {}


def derivative(
    backend: str, model: Model, shape: tuple[int, ...], op: str
) -> diffops.DerivativeFunction:
    """The derivative function of ``model`` at ``shape`` (built once per session)."""
    key = (backend, model.name, shape, op)
    if key not in _DERIVATIVES:
        func, options = model.function(backend, shape)
        _DERIVATIVES[key] = diffops.DerivativeFunction(func, op, backend, **options)
    return _DERIVATIVES[key]


def case_derivative(backend: str, case: Case, op: str) -> diffops.DerivativeFunction:
    return derivative(backend, case.model, case.shape, op)


def outputs(backend: str, case: Case, op: str, index: int) -> tuple[Any, ...]:
    """Outputs at ``points(case)[index]``, computed once per session.

    A build failure is remembered and re-raised, so a backend that cannot build a
    case fails every test of it without paying the build again.
    """
    build_key = (backend, case.id, op)
    if build_key in _FAILURES:
        raise _FAILURES[build_key]
    key = (*build_key, index)
    if key not in _OUTPUTS:
        try:
            _OUTPUTS[key] = case_derivative(backend, case, op)(points(case)[index])
        except Exception as err:
            _FAILURES[build_key] = err
            raise
    return _OUTPUTS[key]


# ---------------------------------------------------------------------------------
# Comparisons


def is_closure(value: Any) -> bool:
    return callable(value)


def closure_argument(shape: tuple[int, ...], *key: object) -> np.ndarray:
    return rng_for("closure", *key).standard_normal(shape)


def assert_same_kind(
    got: Any, dtype: np.dtype, shape: tuple[int, ...], what: str
) -> None:
    """``got`` is a NumPy array (or NumPy scalar) of exactly ``dtype`` and ``shape``."""
    kind = f"{type(got).__module__}.{type(got).__name__}"
    assert isinstance(got, np.ndarray | np.generic), (
        f"{what}: expected a NumPy array, got {kind}"
    )
    assert np.shape(got) == shape, f"{what}: shape {np.shape(got)} != expected {shape}"
    assert np.asarray(got).dtype == dtype, (
        f"{what}: dtype {np.asarray(got).dtype} != expected {dtype}"
    )


def assert_outputs_match(
    got: tuple[Any, ...],
    expected: tuple[Any, ...],
    *,
    dtype: np.dtype,
    rtol: float,
    atol: float,
    closure_key: tuple[Any, ...],
    what: str,
) -> None:
    """Compare every output (closures applied to one shared random argument).

    ``expected`` closures/arrays are NumPy (closed forms) or another backend's outputs.
    Shapes and dtypes must match exactly; values to ``rtol`` and ``atol`` times the
    largest expected magnitude (at least 1).
    """
    assert len(got) == len(expected), (
        f"{what}: {len(got)} outputs, expected {len(expected)}"
    )
    for position, (g, e) in enumerate(zip(got, expected, strict=True)):
        label = f"{what}, output {position}"
        assert is_closure(g) == is_closure(e), f"{label}: closure mismatch"
        if is_closure(g):
            arg_shape = tuple(g.arg_shape)
            arg = closure_argument(arg_shape, *closure_key, position)
            g, e = g(arg), e(arg)
            label += f" (closure applied to shape {arg_shape})"
        expected_arr = np.asarray(e)
        assert_same_kind(g, dtype, expected_arr.shape, label)
        scale = max(1.0, float(np.max(np.abs(expected_arr), initial=0.0)))
        np.testing.assert_allclose(
            np.asarray(g, dtype=np.float64),
            expected_arr.astype(np.float64),
            rtol=rtol,
            atol=atol * scale,
            err_msg=label,
        )


def expected_shapes(
    op: str, s: tuple[int, ...], f: tuple[int, ...]
) -> tuple[tuple[tuple[int, ...], tuple[int, ...]] | tuple[int, ...], ...]:
    """The DESIGN.md shape table: closures as ``(arg_shape, out_shape)`` pairs."""
    return {
        "vjp_and_value": ((f, s), f),
        "grad_and_value": (s, ()),
        "hessian_grad_and_value": (s + s, s, ()),
        "mtp_hessian_grad_and_value": ((s + s, s), s + s, s, ()),
        "jacobian_and_value": (f + s, f),
        "mhp_jacobian_and_value": ((f + s, s), f + s, f),
        "jvp_and_value": ((s, f), f),
        "hvp_grad_and_value": ((s, s), s, ()),
    }[op]
