"""The ``args`` case: data passed as extra arguments against data closed over, on JAX.

Per-call time of ``diffops.grad_and_value(f)(beta, design, labels)`` against
``diffops.grad_and_value(lambda b: f(b, design, labels))(beta)``, and the same two
ways in hand-written ``jax.jit``, for the logistic-regression log-posterior with
d = 100 coefficients and n = 1000 data points. Extra arguments are runtime inputs of
the compiled program, and closed-over data is a constant of it. XLA's CPU client uses
a NumPy argument in place only if its buffer is 64-byte aligned, and copies it on
every call otherwise (≈ 0.1 ms for the 800 kB design matrix, for diffops and
``jax.jit`` alike); whether a fresh NumPy array is aligned depends on the allocator,
so the data is passed three ways: NumPy arrays placed 64-byte aligned, NumPy arrays
placed 16 bytes past a 64-byte boundary (as ``malloc`` may return them), and
``jax.Array``s converted once.

Then the XLA compilations that the first call with a second data set of the same
shapes triggers, counted (not timed) with a ``jax.monitoring`` listener.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np

import diffops
from diffops.models import namespace

from .baselines import jax as jax_baselines
from .baselines.closed_forms import closed_form_impl
from .cases import DATA_SEED, Problem, logistic_data, logistic_model, sample
from .check import compare
from .config import Config
from .implementations import Impl, OpFn
from .records import Record

SECTION = "args"
ARGS_DIM, ARGS_N_DATA = 100, 1000
SECOND_SEED = DATA_SEED + 1
"""Seed of the second data set (same shapes, new values)."""

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
"""The ``jax.monitoring`` duration event recorded once per XLA compilation."""

NEW_DATA = "compilations on new data"
"""``Record.op`` of the compilation counts."""

OP = "grad_and_value"

Data = tuple[Any, Any]


def logistic_with_data(ns: SimpleNamespace) -> Callable[..., Any]:
    """``f(beta, design, labels)``: the logistic log-posterior with its data as args."""

    def logistic(beta: Any, design: Any, labels: Any) -> Any:
        z = design @ beta
        return ns.sum(labels * z - ns.log1p(ns.exp(z))) - ns.sum(beta**2) / 2

    return logistic


def _jax_f() -> Callable[..., Any]:
    """A fresh function object each call, so that no cache can help."""
    return logistic_with_data(namespace("jax"))


ALIGNMENT = 64
"""Buffer alignment (bytes) below which XLA's CPU client copies a NumPy argument."""

MISALIGNED = 16
"""Offset (bytes) past a 64-byte boundary of the "misaligned" NumPy data."""

ALIGNED, NOT_ALIGNED, DEVICE = (
    "NumPy data (64-byte aligned)",
    "NumPy data (misaligned)",
    "jax.Array data",
)
"""The ways the data is passed as extra arguments (row label suffixes)."""


def _placed(arr: np.ndarray, offset: int) -> np.ndarray:
    """A copy of ``arr`` starting ``offset`` bytes past a 64-byte boundary."""
    buf = np.empty(arr.nbytes + 2 * ALIGNMENT, np.uint8)
    start = (-buf.ctypes.data) % ALIGNMENT + offset
    out = buf[start : start + arr.nbytes].view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out


def _passed(data: Data, how: str) -> Data:
    """The data as passed: placed NumPy arrays, or float64 ``jax.Array``s."""
    if how == DEVICE:
        import jax.numpy as jnp

        with jax_baselines.x64():
            return jnp.asarray(data[0]), jnp.asarray(data[1])
    offset = MISALIGNED if how == NOT_ALIGNED else 0
    return _placed(data[0], offset), _placed(data[1], offset)


# ---------------------------------------------------------------------------------
# The ways of calling: each builds ``call(x, data) -> (grad, value)`` as NumPy


def _diffops_args() -> Callable[[np.ndarray, Data], tuple[Any, ...]]:
    op = diffops.grad_and_value(_jax_f(), backend="jax")
    return lambda x, data: op(x, *data)


def _diffops_closed() -> Callable[[np.ndarray, Data], tuple[Any, ...]]:
    f = _jax_f()
    built: dict[int, Any] = {}

    def call(x: np.ndarray, data: Data) -> tuple[Any, ...]:
        # One derivative function per data set, as a user must build it.
        key = id(data)
        if key not in built:
            built[key] = diffops.grad_and_value(lambda b: f(b, *data), backend="jax")
        out: tuple[Any, ...] = built[key](x)
        return out

    return call


def _jit_args() -> Callable[[np.ndarray, Data], tuple[Any, ...]]:
    import jax

    jf = jax.jit(jax.value_and_grad(_jax_f()))

    def call(x: np.ndarray, data: Data) -> tuple[Any, ...]:
        v, g = jf(x, *data)  # JAX returns (value, grad)
        return np.asarray(g), np.asarray(v)

    return call


def _jit_closed() -> Callable[[np.ndarray, Data], tuple[Any, ...]]:
    import jax

    f = _jax_f()
    built: dict[int, Any] = {}

    def call(x: np.ndarray, data: Data) -> tuple[Any, ...]:
        key = id(data)
        if key not in built:
            built[key] = jax.jit(jax.value_and_grad(lambda b: f(b, *data)))
        v, g = built[key](x)
        return np.asarray(g), np.asarray(v)

    return call


DIFFOPS, JIT = "diffops[jax]", "jax.jit(value_and_grad)"

WAYS: tuple[tuple[str, str, Callable[[], Any], str], ...] = (
    *(
        (f"{DIFFOPS} extra args, {how}", "diffops", _diffops_args, how)
        for how in (ALIGNED, NOT_ALIGNED, DEVICE)
    ),
    (f"{DIFFOPS} closed-over data", "diffops", _diffops_closed, ALIGNED),
    *(
        (f"{JIT} extra args, {how}", "framework", _jit_args, how)
        for how in (ALIGNED, NOT_ALIGNED, DEVICE)
    ),
    (f"{JIT} closed-over data", "framework", _jit_closed, ALIGNED),
)
"""(row label, kind, builder of ``call(x, data)``, how the data is passed)."""

COUNTED = (WAYS[0], WAYS[3], WAYS[4])
"""Ways whose compilations on a second data set are counted."""


def args_problem(cfg: Config) -> Problem | None:
    """The timed ``args`` problem (``None`` with a note when jax is not selected)."""
    if "jax" not in cfg.backends:
        cfg.notes.append("args: needs the jax backend, which is not selected")
        return None
    model, _ = logistic_model(ARGS_DIM, ARGS_N_DATA)
    data = logistic_data(ARGS_DIM, ARGS_N_DATA)
    impls = []
    for name, kind, make, how in WAYS:

        def build(make: Callable[[], Any] = make, how: str = how) -> OpFn:
            call = make()
            used = _passed(data, how)
            return lambda x: call(x, used)

        impls.append(
            Impl(
                name,
                kind,
                "jax",
                build,
                backend="jax" if kind == "diffops" else None,
                family="jax.jit" if kind == "framework" else None,
                context=jax_baselines.x64
                if kind == "framework"
                else contextlib.nullcontext,
            )
        )
    impls.append(closed_form_impl(model, OP))
    x = sample(model, seed=len(SECTION) + ARGS_DIM)
    cfg.notes.append(
        f"args: logistic regression d = {ARGS_DIM}, n = {ARGS_N_DATA}; XLA uses "
        f"64-byte aligned NumPy arguments in place and copies misaligned ones on "
        f"every call; 'jax.Array data' was converted once"
    )
    return Problem(SECTION, OP, model, x, None, impls)


@contextlib.contextmanager
def _counting() -> Iterator[list[int]]:
    """Count XLA compilations (``COMPILE_EVENT``) inside the block."""
    import jax

    count = [0]

    def listener(event: str, duration_secs: float, **kwargs: Any) -> None:
        if event == COMPILE_EVENT:
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def compile_counts(cfg: Config) -> list[Record]:
    """XLA compilations of the first call with a second data set of the same shapes.

    Each way is built with a fresh function, called once with the first data set
    (which compiles), then called with the second data set inside a compilation
    counter; that result is checked against the closed forms of the second data set.

    Args:
        cfg: The run's settings (unused; for the job signature).

    Returns:
        One record per counted way, with ``count`` set and no timing.
    """
    model2, _ = logistic_model(ARGS_DIM, ARGS_N_DATA, SECOND_SEED)
    first = _passed(logistic_data(ARGS_DIM, ARGS_N_DATA), ALIGNED)
    second = _passed(logistic_data(ARGS_DIM, ARGS_N_DATA, SECOND_SEED), ALIGNED)
    x = sample(model2, seed=len(SECTION) + ARGS_DIM)
    reference = (model2.first(x), model2.value(x))
    records = []
    for name, kind, make, _ in COUNTED:
        record = Record(
            SECTION,
            NEW_DATA,
            ARGS_DIM,
            name,
            kind,
            "jax",
            backend="jax" if kind == "diffops" else None,
            family="jax.jit" if kind == "framework" else None,
            note="XLA compilations during the first call with a second data set of "
            "the same shapes (counted, not timed)",
        )
        context = jax_baselines.x64 if kind == "framework" else contextlib.nullcontext
        try:
            with context():
                call = make()
                call(x, first)
                with _counting() as count:
                    out = call(x, second)
            record.count = count[0]
            record.error = compare(out, reference, OP, None, kind == "diffops")
            record.correct = record.error is None
        except Exception as err:
            record.error = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            record.correct = False
        records.append(record)
    return records
