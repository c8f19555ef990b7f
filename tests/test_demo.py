"""The checked-and-timed report behind ``diffops check`` and ``diffops demo``."""

from __future__ import annotations

import io
import json
import math
import sys

import numpy as np
import pytest

from _backends import installed_selected_backends, require_backend
from diffops import demo
from diffops.demo import Row, as_json, check_backends, failures, render, run_demo


def _backend() -> str:
    for name in ("autograd", "torch", "jax"):
        if name in installed_selected_backends():
            return name
    pytest.skip("needs autograd, torch or jax")


def generic(x):
    return (x**2).sum() * 0.5 + (x[0] * x[-1])


def generic_grad(x):
    g = x.copy()
    g[0] += x[-1]
    g[-1] += x[0]
    return g, generic(x)


def generic_grad_wrong(x):
    g, v = generic_grad(x)
    return g.T * 1.001, v


X = np.array([0.2, -0.4, 0.9])


def test_rows_per_backend_and_supplied():
    backend = _backend()
    rows = check_backends(
        generic,
        X,
        ("grad_and_value", "hvp_grad_and_value"),
        (backend,),
        supplied=[
            ("grad_and_value", "good", generic_grad),
            ("grad_and_value", "bad", generic_grad_wrong),
        ],
    )
    keyed = {(r.source, r.op_name): r for r in rows}
    assert list(keyed) == [
        (backend, "grad_and_value"),
        (backend, "hvp_grad_and_value"),
        ("supplied: good", "grad_and_value"),
        ("supplied: bad", "grad_and_value"),
    ]
    for key in list(keyed)[:3]:
        row = keyed[key]
        assert row.status == "passed", row.note
        assert row.per_call > 0
        assert row.first_call > 0
        assert row.max_rel_error < 1e-8
        assert row.report is not None
    bad = keyed[("supplied: bad", "grad_and_value")]
    assert bad.failed
    assert "grad[" in bad.note
    assert "rel error 0.001" in bad.note
    # Supplied functions are also compared with the first backend that passed.
    tests = {c.test for c in bad.report.checks}
    assert f"{backend}'s grad_and_value" in tests
    assert failures(rows) == [bad]


def test_backend_that_cannot_run_the_function_is_not_applicable():
    require_backend("autograd")

    def needs_numpy_array(x):
        return float(np.asarray(x).sum())  # converts: no derivative possible

    rows = check_backends(needs_numpy_array, X, ("grad_and_value",), ("autograd",))
    (row,) = rows
    assert row.status == "not applicable"
    assert row.op_name == "(all)"
    assert row.note.startswith("not applicable: ")
    assert not row.failed
    assert failures(rows) == []


def test_errors_after_the_first_operator_are_failures():
    backend = _backend()
    rows = check_backends(
        generic,
        X,
        ("grad_and_value",),
        (backend,),
        supplied=[("grad_and_value", "raises", lambda x: 1 / 0)],
    )
    raised = rows[-1]
    assert raised.status == "error"
    assert raised.failed
    assert "ZeroDivisionError" in raised.note


def test_json_document():
    backend = _backend()
    rows = check_backends(
        generic,
        X,
        ("grad_and_value",),
        (backend,),
        supplied=[("grad_and_value", "bad", generic_grad_wrong)],
    )
    document = as_json(rows, target="t")
    text = json.dumps(document)  # JSON-compatible, nan as null
    assert "NaN" not in text
    assert document["target"] == "t"
    assert document["passed"] is False
    assert document["backends_applied"] == [backend]
    assert document["results"][1]["status"] == "failed"


def test_render_plain_text(monkeypatch):
    for name in ("rich", "rich.console", "rich.table"):
        monkeypatch.setitem(sys.modules, name, None)
    rows = [
        Row("jax", "(all)", "not applicable", note="not applicable: uses torch"),
        Row("torch", "grad_and_value", "passed", 1e-12, 1e-13, 2e-5, 0.5),
        Row("supplied: g", "grad_and_value", "failed", 1.0, 0.5, 1e-6, 1e-6, "wrong"),
    ]
    out = io.StringIO()
    render(rows, out, title="title")
    lines = out.getvalue().splitlines()
    assert lines[0] == "title"
    assert "not applicable [1]" in lines[2]
    assert "20 µs" in lines[3]
    assert "500 ms" in lines[3]
    assert "FAILED [2]" in lines[4]
    assert lines[5] == "[1] jax: not applicable: uses torch"
    assert lines[6] == "[2] supplied: g · grad_and_value: wrong"


def test_demo_rows_use_closed_forms_and_finite_differences():
    backend = _backend()
    rows = run_demo((backend,), ("banana",), advance=lambda text: None)
    assert {r.model for r in rows} == {"banana"}
    assert len(rows) == len(demo.applicable_ops(demo.MODELS["banana"]))
    for row in rows:
        assert row.closed_form_error <= demo.TOLERANCE
        assert row.status == "passed", row.note
        assert any(c.test.startswith("finite differences") for c in row.report.checks)
    assert failures(rows) == []


def test_demo_failure_rules():
    passed = Row("jax", "grad_and_value", "passed", model="banana")
    passed.closed_form_error = 1e-12
    assert not passed.failed
    off = Row("jax", "grad_and_value", "passed", model="banana")
    off.closed_form_error = 1e-3
    assert off.failed
    nan = Row("jax", "grad_and_value", "passed", model="banana")
    assert math.isnan(nan.closed_form_error)
    assert nan.failed
    skipped = Row("symnum", "(all)", "skipped", note="skipped: slow", model="banana")
    assert not skipped.failed
    out = io.StringIO()
    render([passed, off, skipped], out)
    text = out.getvalue()
    assert "banana: 2-d banana log-density" in text
    assert "differs from the closed forms by 1.00e-03 > 1e-08" in text
