"""The checked-and-timed report behind ``diffops check`` and ``diffops demo``."""

from __future__ import annotations

import io
import json
import math

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
        assert row.finite_difference_error < 1e-8
        assert row.report is not None
    assert keyed[("supplied: good", "grad_and_value")].reference == backend
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


def _rows() -> list[Row]:
    return [
        Row("jax", "(all)", "not applicable", note="not applicable: uses torch"),
        Row("torch", "grad_and_value", "passed", 1e-12, 1e-13, 2e-5, 0.5),
        Row("torch", "mtp_hessian_grad_and_value", "passed", 1e-12, 1e-13, 2e-3, 1.5),
        Row("supplied: g", "grad_and_value", "failed", 1.0, 0.5, 1e-6, 1e-6, "wrong"),
    ]


def test_render_table_with_units_sections_and_notes():
    out = io.StringIO()
    render(_rows(), out, title="title", width=100)
    lines = out.getvalue().splitlines()
    assert lines[0] == "title"
    assert lines[1].split() == ["error", "vs", "time", "per", "first"]
    assert lines[2].split() == ["operator", "result", "fin.", "diff.", "call", "call"]
    assert lines[4] == "jax: not applicable [1]"  # a backend that does not apply
    assert lines[5] == "torch"  # the rows below belong to torch
    assert lines[6].split() == ["grad_and_value", "passed", "20", "µs", "500", "ms"]
    assert "2 ms" in lines[7]
    assert "1.5 s" in lines[7]
    assert lines[8] == "supplied: g"
    assert "FAILED [2]" in lines[9]
    assert lines[10] == "[1] jax: not applicable: uses torch"
    assert lines[11] == "[2] supplied: g · grad_and_value: wrong"


@pytest.mark.parametrize("width", [40, 60, 80, 100])
def test_render_fits_the_width_and_cuts_nothing(width):
    out = io.StringIO()
    render(_rows(), out, title="title", width=width)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width, text
    for word in ("µs", "ms", "passed", "FAILED", "[2]", "wrong", "torch"):
        assert word in text
    names = ("mtp_hessian_grad_and_value", "grad_and_value")
    key = "operators by their first output: grad = grad_and_value"
    if width >= 80:
        assert all(name in text for name in names)
    elif width == 60:  # operators by their first output, with a key
        assert key in text.replace("\n    ", " ").replace("\u00a0", " ")
    else:  # too narrow for a table: a block of "column: value" lines per row
        assert all(name in text for name in names)
        assert "  time per call: 20 µs" in text


def test_columns_name_what_was_compared():
    rows = [
        Row("jax", "grad_and_value", "passed", model="banana"),
        Row("torch", "grad_and_value", "passed", model="banana", reference="jax"),
    ]
    text = demo.format_rows(rows, 120)
    header = " ".join(text.splitlines()[:2])
    for words in ("error vs", "closed form", "fin. diff.", "jax", "time per", "first"):
        assert words in header
    for line in demo.legend(closed_forms=True, reference="jax"):
        assert line.split(":")[0] in (
            "error vs closed form",
            "error vs fin. diff.",
            "error vs jax",
            "time per call",
            "first call",
        )


def test_demo_rows_use_closed_forms_and_finite_differences():
    backend = _backend()
    shown = []
    rows = run_demo((backend,), ("banana",), on_model=lambda m, r: shown.append(m))
    assert [m.name for m in shown] == ["banana"]
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


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_counts_steps_and_estimates_the_time_left(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(demo.progress.time, "perf_counter", lambda: now[0])
    monkeypatch.setenv("COLUMNS", "200")
    stream = _Terminal()
    # Two units of "slow" (3 steps) and one of "fast" (2 steps) = 8 steps planned.
    progress = demo.Progress([("slow", 3), ("fast", 2), ("slow", 3)], stream)
    assert progress.total == 8
    assert progress.seconds_left() is None  # nothing measured yet
    for text, seconds in (("slow one", 3.0), ("slow two", 3.0)):
        progress.step(text)
        now[0] += seconds
    progress.next_unit()  # the third step of the unit was not needed
    assert progress.done == 3
    progress.step("fast one")
    now[0] += 1.0
    progress.step("fast two")
    # Left after the step now running: 3 slow steps of 3 s each so far.
    assert progress.seconds_left() == pytest.approx(9.0)
    progress.close()
    text = stream.getvalue()
    assert "[1/8]" in text
    assert "[5/8]" in text
    assert "[5/8] 7 s, about 9 s left · fast two" in text
    assert text.endswith("\r\x1b[2K")  # the status line is cleared at the end


def test_progress_draws_nothing_when_not_a_terminal():
    stream = io.StringIO()
    progress = demo.Progress([("jax", 2)], stream)
    progress.step("one")
    progress.milestone("banana done")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("banana done: ")


def test_interleaved_timing_rotates_the_order_of_the_calls():
    from diffops.timing import interleaved_call_times

    calls: list[str] = []
    times = interleaved_call_times(
        [lambda: calls.append("a"), lambda: calls.append("b")],
        batch_seconds=1e-4,
        rounds=3,
    )
    assert len(times) == 2
    assert all(t > 0 for t in times)
    # After warm-up and calibration (all "a", then all "b"), the rounds alternate:
    # round 1 starts with b, round 2 with a.
    tail = [c for k, c in enumerate(calls) if k == 0 or c != calls[k - 1]]
    assert tail[-4:] == ["a", "b", "a", "b"] or tail[-3:] == ["b", "a", "b"]


def test_start_backend_times_the_import_and_a_first_derivative():
    backend = _backend()
    startup = demo.start_backend(backend)
    assert startup.error == ""
    assert startup.first_seconds > 0
    # Imported already by earlier tests, or imported now and timed.
    assert math.isnan(startup.import_seconds) or startup.import_seconds > 0
    data = startup.as_dict()
    assert data["framework"]
    assert data["first_derivative_seconds"] > 0
    table = demo.format_startups([startup], 80)
    assert backend in table
    assert "import of" in table
