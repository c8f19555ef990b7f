"""pytest plugin: Mici's own interface tests, run with diffops as ``mici.autodiff``.

Loaded with ``-p _mici_interface_plugin`` by ``test_mici_interface.py``, in a pytest
subprocess that runs ``tests/test_interface.py`` from Mici's sdist unchanged.

How diffops stands in for ``mici.autodiff``: before Mici is imported, diffops is put in
``sys.modules`` as ``mici.autodiff`` (and its ``jax_wrapper``, ``autograd_wrapper`` and
``symnum_wrapper`` modules as Mici's). Mici's ``import mici.autodiff`` and every
``from mici.autodiff import ...`` (``mici.systems`` takes ``autodiff_fallback`` and
``wrap_function``) then get diffops' objects, wherever Mici takes them, without naming
them one by one; fork children inherit the substitution.

Environment:

- ``DIFFOPS_MICI_BACKENDS``: comma-separated backend names that replace the
  ``backend`` parametrisation of Mici's tests (``[None, "jax", "autograd"]``);
  ``none`` stands for ``None``, Mici's own hand-written derivatives.
- ``DIFFOPS_MICI_PARALLEL``: ``1`` runs every chain on its own worker process
  (``n_worker = n_chain``, the keyword left to its default by Mici's backend cases),
  under Mici's default start method.
- ``DIFFOPS_MICI_REPORT``: file to write each test's outcome to, as JSON.

One change to the standard library's worker pools, for a CPython bug that Mici's
failure path meets (python/cpython#96995): when a worker raises, Mici leaves its
``with Pool(...)`` block, whose ``terminate()`` kills the workers, and a worker killed
while it writes its result to the pool's result queue leaves that queue's lock taken;
the pool's task thread then waits for it forever, and so does ``terminate()``. Seen
here without diffops or JAX (Mici with a plain NumPy gradient that raises in the
workers hung for good after 12, 34 and 93 runs in three loops of 200 on a loaded
2-core machine; with this change, 200 runs and none hung), and it was
the "hang" this test reported now and then in CI. :func:`_settle_before_terminate`
gives the workers up to ``SETTLE`` seconds to finish their tasks and leave on their
own before ``terminate()``; a worker still busy after that (a real hang) is killed
as before, and the test's timeout still catches it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import multiprocessing.pool
import os
import sys
import time

import pytest

import diffops

if any(name == "mici" or name.startswith("mici.") for name in sys.modules):
    raise RuntimeError("mici was imported before diffops could stand in for it")
sys.modules["mici.autodiff"] = diffops
for _wrapper in ("jax_wrapper", "autograd_wrapper", "symnum_wrapper"):
    sys.modules[f"mici.autodiff.{_wrapper}"] = importlib.import_module(
        f"diffops.{_wrapper}"
    )

import mici  # noqa: E402 - after the substitution
import mici.interface  # noqa: E402
import mici.samplers  # noqa: E402
import mici.systems  # noqa: E402

mici.autodiff = diffops  # what `import mici.autodiff` binds
assert mici.systems.autodiff_fallback is diffops.autodiff_fallback
assert mici.systems.wrap_function is diffops.wrap_function

MICI_BACKENDS = [None, "jax", "autograd"]
"""The ``backend`` parametrisation in Mici 0.4.1's test_interface.py."""

BACKENDS = [
    None if name.strip() == "none" else name.strip()
    for name in os.environ.get("DIFFOPS_MICI_BACKENDS", "none,jax,autograd").split(",")
]
PARALLEL = os.environ.get("DIFFOPS_MICI_PARALLEL") == "1"

# Per test: whether any of Mici's worker pools started after JAX computed here.
_POOLS: list[bool] = []


def _jax_computed() -> bool:
    bridge = sys.modules.get("jax._src.xla_bridge")
    return bridge is not None and bridge.backends_are_initialized()


def _n_worker_is_n_chain(sample):
    signature = inspect.signature(sample)

    @functools.wraps(sample)
    def sample_in_parallel(*args, **kwargs):
        init_states = signature.bind(*args, **kwargs).arguments["init_states"]
        kwargs.setdefault("n_worker", len(init_states))
        return sample(*args, **kwargs)

    return sample_in_parallel


def _recording_pool_starts(sample_chains_parallel):
    @functools.wraps(sample_chains_parallel)
    def recorded(*args, **kwargs):
        _POOLS.append(_jax_computed())
        return sample_chains_parallel(*args, **kwargs)

    return recorded


SETTLE = 20.0
"""Seconds a pool left because of an exception gives its workers to leave."""


def _settle_before_terminate(exit_pool):
    @functools.wraps(exit_pool)
    def settled(pool, exc_type, exc_value, traceback):
        if exc_type is not None and pool._state == multiprocessing.pool.RUN:
            pool.close()  # workers leave once the tasks are done
            deadline = time.monotonic() + SETTLE
            for worker in pool._pool:
                worker.join(max(deadline - time.monotonic(), 0.0))
        return exit_pool(pool, exc_type, exc_value, traceback)

    return settled


multiprocessing.pool.Pool.__exit__ = _settle_before_terminate(
    multiprocessing.pool.Pool.__exit__
)

if PARALLEL:
    for _name in ("sample_hmc_chains", "sample_constrained_hmc_chains"):
        setattr(
            mici.interface, _name, _n_worker_is_n_chain(getattr(mici.interface, _name))
        )
mici.samplers._sample_chains_parallel = _recording_pool_starts(
    mici.samplers._sample_chains_parallel
)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """Replace the ``backend`` parametrisation of Mici's tests by ours."""
    marks = getattr(obj, "pytestmark", None)
    if not callable(obj) or not marks:
        return
    for i, mark in enumerate(marks):
        if mark.name == "parametrize" and mark.args[0] == "backend":
            if list(mark.args[1]) != MICI_BACKENDS:
                msg = f"Mici's {name} is parametrised over {mark.args[1]}"
                raise RuntimeError(msg)
            marks[i] = pytest.mark.parametrize("backend", BACKENDS).mark


_RESULTS: list[dict] = []
_STARTED: dict[str, float] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _POOLS.clear()
    _STARTED[item.nodeid] = time.perf_counter()
    # Which case is running, so that a run cut short by a timeout can say.
    path = os.environ.get("DIFFOPS_MICI_REPORT")
    if path:
        with open(f"{path}.running", "w") as file:
            file.write(item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call":
        if report.failed:  # setup or teardown errors count as failures
            _RESULTS.append(_result(item, report, call))
        return
    _RESULTS.append(_result(item, report, call))


def _result(item, report, call):
    errors = []
    err = call.excinfo.value if call.excinfo is not None else None
    while err is not None:
        errors.append(f"{type(err).__name__}: {str(err)[:300]}")
        err = err.__cause__ or err.__context__
    params = item.callspec.params if hasattr(item, "callspec") else {}
    return {
        "nodeid": item.nodeid,
        "backend": params.get("backend"),
        "n_chain": params.get("n_chain"),
        "outcome": report.outcome,
        "errors": errors,
        "pools": list(_POOLS),
        "seconds": time.perf_counter() - _STARTED.get(item.nodeid, time.perf_counter()),
    }


def pytest_sessionfinish(session):
    path = os.environ.get("DIFFOPS_MICI_REPORT")
    if path:
        with open(path, "w") as file:
            json.dump(_RESULTS, file)
