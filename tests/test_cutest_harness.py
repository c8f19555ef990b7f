"""The CUTEst harness's oracle and worker pool (benchmarks/cutest): they must fail
when the sparse result is wrong, and stop tasks that run too long."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cutest import compare, rows, runner  # noqa: E402
from benchmarks.cutest.pool import Pool, Task  # noqa: E402

import _child as child  # noqa: E402

RNG = np.random.default_rng(18)


def _banded(n: int) -> np.ndarray:
    dense = np.zeros((n, n))
    for offset in (-1, 0, 1):
        dense += np.diag(RNG.standard_normal(n - abs(offset)), offset)
    return dense


def _comparison(pattern: np.ndarray, sparse: list, dense: list) -> dict:
    comparison = compare.Comparison(pattern)
    for s, d in zip(sparse, dense, strict=True):
        comparison.add(s, d, pattern)
    counts = comparison.summary()
    counts["lower_rel_error"] = 0.0
    return counts


def test_exact_result_passes_and_counts_spurious_entries():
    dense = [_banded(6) for _ in range(3)]
    pattern = np.abs(np.subtract.outer(np.arange(6), np.arange(6))) <= 2
    sparse = [np.where(pattern, d, 0.0) for d in dense]
    counts = _comparison(pattern, sparse, dense)
    assert compare.status(counts, 1e-10) == "ok"
    assert counts["misses"] == 0
    assert counts["observed_nnz"] == 16
    assert counts["nnz"] == 6 + 2 * 5 + 2 * 4
    assert counts["spurious"] == 2 * 4


def test_a_missed_entry_fails():
    dense = [_banded(5) for _ in range(2)]
    pattern = dense[0] != 0
    pattern[2, 3] = False  # detection lost one entry
    sparse = [np.where(pattern, d, 0.0) for d in dense]
    counts = _comparison(pattern, sparse, dense)
    assert counts["misses"] == 1
    assert counts["miss_examples"] == "(2,3)"
    # The sparse result stores nothing there, so its values are wrong too.
    assert compare.status(counts, 1e-10) == "miss+wrong"


def test_an_entry_nonzero_at_one_point_only_is_still_required():
    first, second = _banded(4), _banded(4)
    first[0, 3] = 0.0
    second[0, 3] = 1.5
    pattern = first != 0
    sparse = [np.where(pattern, d, 0.0) for d in (first, second)]
    counts = _comparison(pattern, sparse, [first, second])
    assert counts["misses"] == 1


def test_a_wrong_value_fails():
    dense = [_banded(5)]
    pattern = dense[0] != 0
    sparse = [dense[0] * (1 + 1e-8)]
    counts = _comparison(pattern, sparse, dense)
    assert counts["max_rel_error"] > 1e-10
    assert compare.status(counts, 1e-10) == "wrong"


def test_a_changing_structure_fails():
    dense = [_banded(4), _banded(4)]
    pattern = dense[0] != 0
    comparison = compare.Comparison(pattern)
    comparison.add(dense[0], dense[0], pattern)
    other = pattern.copy()
    other[0, 3] = True
    comparison.add(dense[1], dense[1], other)
    counts = {**comparison.summary(), "lower_rel_error": 0.0}
    assert compare.status(counts, 1e-10) == "wrong"


def test_nonfinite_dense_entries_are_left_out():
    dense = _banded(4)
    dense[3, 0] = np.nan  # 0 * inf in a dense Jacobian
    pattern = np.isfinite(dense) & (dense != 0)
    sparse = np.where(pattern, dense, 0.0)
    counts = _comparison(pattern, [sparse], [dense])
    assert counts["nonfinite"] == 1
    assert counts["misses"] == 0
    assert compare.status(counts, 1e-10) == "ok"


def test_nan_where_dense_is_finite_is_wrong():
    dense = _banded(4)
    sparse = dense.copy()
    sparse[1, 1] = np.nan
    assert compare.rel_error(sparse, dense) == np.inf


def test_problem_lists_split_outside_brackets():
    assert runner._split("ARWHEAD,ARGLINA[n=50,m=100],HS111") == [
        "ARWHEAD",
        "ARGLINA[n=50,m=100]",
        "HS111",
    ]


def test_csv_round_trip_and_asdex_merge(tmp_path):
    spec = {"name": "ARGLINA", "params": "n=50,m=100", "category": "unconstrained"}
    spec.update(n=50, m=0)
    row = rows.new_row(spec, "hessian")
    row.update(status="ok", nnz=2500, colors=50, detect_s=0.5, color_s=1.5)
    row.update(first_s=3.0, call_s=2e-4, points_digest="abc")
    path = tmp_path / "r.csv"
    rows.write_all(path, [row], rows.COLUMNS)
    (read,) = rows.read(path)
    assert read["nnz"] == 2500
    assert read["params"] == "n=50,m=100"
    other = dict(read, nnz=2500, colors=25, detect_s=0.1, color_s=0.1, call_s=1e-4)
    (merged,) = rows.merge_asdex([read], [other])
    assert merged["colors_ratio"] == 2.0
    assert merged["detect_color_ratio"] == pytest.approx(10.0)
    assert merged["call_ratio"] == pytest.approx(2.0)
    assert merged["same_points"] is True


def test_pool_stops_slow_tasks_and_survives_crashes():
    tasks = [
        Task("python loop", "tests._cutest_tasks:python_loop", {}, 1.0),
        Task("stuck in C", "tests._cutest_tasks:stuck_in_c", {}, 0.5),
        Task("dies", "tests._cutest_tasks:dies", {}, 5.0),
        Task("fine", "tests._cutest_tasks:fine", {"value": 3}, 5.0),
    ]
    start = time.monotonic()
    with Pool(jobs=1, grace=1.0) as pool:
        outcomes = {o.task.key: o for o in pool.run(tasks)}
    assert outcomes["python loop"].status == "timeout"
    assert outcomes["python loop"].partial == {"stage": "looping"}
    assert outcomes["stuck in C"].status == "killed"
    assert outcomes["dies"].status == "crashed"
    assert outcomes["fine"].status == "done"
    assert outcomes["fine"].result == 6
    assert time.monotonic() - start < 60


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter at the repository root; it must succeed."""
    return child.run_python(code, root=ROOT)


def test_problems_load_alone_without_importing_all_of_sif2jax():
    """The fresh-process benchmark imports one problem's module, not sif2jax's
    catalogue (a minute or two); names, classes and categories as the catalogue's."""
    import importlib.util

    if importlib.util.find_spec("sif2jax") is None:  # not imported: a minute or two
        pytest.skip("sif2jax is not installed")

    code = (
        "import sys, jax\n"
        "jax.config.update('jax_enable_x64', True)\n"
        "from benchmarks.cutest import problems\n"
        "problems.load_alone(['HS71', '10FOLDTRLS'])\n"
        "specs = problems.discover(['HS71', '10FOLDTRLS'])\n"
        "print([(s['name'], s['category'], s['n'], s['matrices']) for s in specs])\n"
        "print(sys.modules['sif2jax'].__spec__ is None, 'sif2jax.cutest' in sys.modules"
        " and not hasattr(sys.modules['sif2jax.cutest'], 'unconstrained_minimisation_"
        "problems'))\n"
    )
    done = _run_python(code)
    specs, stubs = done.stdout.strip().splitlines()
    assert specs == (
        "[('HS71', 'constrained', 4, ('jacobian', 'lagrangian')), "
        "('10FOLDTRLS', 'unconstrained', 1000, ('hessian',))]"
    )
    assert stubs == "True True"


_HS71 = (
    "import jax\n"
    "jax.config.update('jax_enable_x64', True)\n"
    "from benchmarks.cutest import measure, problems\n"
    "problems.load_alone(['HS71'])\n"
    "(spec,) = problems.discover(['HS71'])\n"
)
"""Child code: HS71 loaded alone, its spec as ``spec`` (x64 on, as the harness has)."""


def test_a_problem_measured_op_by_op():
    """``--backend jax_nojit``: both derivatives op by op (for programs XLA takes
    minutes to compile); the row says which backend measured it."""
    import importlib.util

    if importlib.util.find_spec("sif2jax") is None:
        pytest.skip("sif2jax is not installed")
    code = (
        _HS71 + "row = measure.measure(spec, 'lagrangian', 2, 0.1, 0, 1e-10, False,\n"
        "    lambda *a, **k: None, backend='jax_nojit')\n"
        "print(row['status'], row['backend'], row['misses'], row['points'])\n"
    )
    done = _run_python(code)
    assert done.stdout.split() == ["ok", "jax_nojit", "0", "2"]


def test_the_products_oracle_passes_the_right_matrix_and_fails_a_missed_entry():
    """``--oracle products``: the sparse matrix times random vectors against JAX's
    own Hessian-vector products; the same check with one entry of the sparse
    result dropped (a missed non-zero) must fail."""
    import importlib.util

    if importlib.util.find_spec("sif2jax") is None:
        pytest.skip("sif2jax is not installed")
    code = (
        _HS71 + "from benchmarks.cutest import compare\n"
        "row = measure.measure(spec, 'lagrangian', 2, 0.1, 0, 1e-10, False,\n"
        "    lambda *a, **k: None, oracle='products')\n"
        "print(row['status'], row['oracle'], row['misses'], row['nnz'])\n"
        "built = problems.build(spec, 'lagrangian', 2)\n"
        "d = measure.operator(built)(built.func, 'jax', sparsity='detect')\n"
        "def dropped(x, *args):\n"
        "    h, *rest = d(x, *args)\n"
        "    h = h.tolil()\n"
        "    h[1, 2] = 0.0\n"
        "    return (h.tocsr(), *rest)\n"
        "x, args = built.points[0]\n"
        "bad = {}\n"
        "measure.check_products(bad, built, dropped, dropped(x, *args), 0)\n"
        "bad['lower_rel_error'] = 0.0\n"
        "print(compare.status(bad, 1e-10), bad['max_rel_error'] > 1e-3)\n"
    )
    done = _run_python(code)
    first, second = done.stdout.strip().splitlines()[-2:]
    assert first.split() == ["ok", "products", "None", "16"]
    assert second.split() == ["wrong", "True"]
