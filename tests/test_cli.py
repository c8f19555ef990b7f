"""The command line: ``diffops --version``, ``backends``, ``check`` and ``demo``."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import pytest

import diffops
from _backends import installed_selected_backends, require_backend
from diffops.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rosenbrock.py"
TARGET = f"{EXAMPLE}:rosenbrock"


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"diffops {diffops.__version__}"


def test_backends_lists_every_backend(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in diffops.registered_backends():
        assert name in out


# ---------------------------------------------------------------------------------
# diffops check: the example


def _one_backend() -> str:
    for name in ("autograd", "torch", "jax"):
        if name in installed_selected_backends():
            return name
    pytest.skip("needs autograd, torch or jax")


def _note(out: str, number: int) -> str:
    """Note ``[number]`` of a table, its wrapped lines joined."""
    lines = out.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(f"[{number}]"))
    note = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        note.append(line.strip())
    return " ".join(note)


def test_check_correct_example_passes(capsys):
    backend = _one_backend()
    argv = [
        "check",
        TARGET,
        "--shape",
        "4",
        "--ops",
        "grad_and_value,hessian_grad_and_value",
        "--backends",
        backend,
        "--supplied",
        "grad_and_value=grad_and_value",
        "--supplied",
        "hessian_grad_and_value=hessian_grad_and_value",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"diffops check {TARGET} at x = [")
    assert "supplied: hessian_grad_and_value" in out
    assert "FAILED" not in out
    assert "4 passed, 0 failed." in out


def test_check_wrong_example_fails_and_says_where(capsys):
    backend = _one_backend()
    argv = [
        "check",
        TARGET,
        "--shape",
        "4",
        "--ops",
        "hessian_grad_and_value",
        "--backends",
        backend,
        "--supplied",
        "hessian_grad_and_value=hessian_grad_and_value_wrong",
    ]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "supplied: hessian_grad_and_value_wrong" in out
    assert "FAILED [1]" in out
    note = _note(out, 1)
    for words in (
        "supplied: hessian_grad_and_value_wrong · hessian_grad_and_value: hessian[",
        "expected",
        "from finite differences of its grad",
        "rel error 0.5",
        "6 of 16 entries exceed their tolerance",
        "seed 0",
    ):
        assert words in note, note
    assert "1 passed, 1 failed." in out


def test_check_json(capsys):
    backend = _one_backend()
    argv = [
        "check",
        TARGET,
        "--point",
        "0.5,1.0,-0.3",
        "--ops",
        "hessian_grad_and_value",
        "--backends",
        backend,
        "--supplied",
        "hessian_grad_and_value=hessian_grad_and_value_wrong",
        "--json",
    ]
    assert main(argv) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["passed"] is False
    assert document["x"] == [0.5, 1.0, -0.3]
    assert document["backends_applied"] == [backend]
    rows = {(r["source"], r["operator"]): r for r in document["results"]}
    ours = rows[(backend, "hessian_grad_and_value")]
    assert ours["status"] == "passed"
    assert ours["per_call_seconds"] > 0
    assert ours["first_call_seconds"] > 0
    wrong = rows[("supplied: hessian_grad_and_value_wrong", "hessian_grad_and_value")]
    assert wrong["status"] == "failed"
    failed = [c for c in wrong["checks"] if c["status"] == "failed"]
    assert {c["part"] for c in failed} == {"hessian"}
    assert all(c["index"] is not None for c in failed)


def test_check_all_backends_and_not_applicable(tmp_path, capsys):
    require_backend("torch")
    others = [b for b in installed_selected_backends() if b != "torch"]
    if not others:
        pytest.skip("needs a backend besides torch")
    path = tmp_path / "torch_model.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch

            def f(x):
                return torch.sin(x).sum()
            """
        )
    )
    argv = ["check", f"{path}:f", "--shape", "3", "--ops", "grad_and_value", "--json"]
    argv += ["--backends", ",".join(["torch", *others])]
    assert main(argv) == 0  # not applicable is not a failure
    document = json.loads(capsys.readouterr().out)
    assert document["backends_applied"] == ["torch"]
    assert set(document["not_applicable"]) == set(others)
    for reason in document["not_applicable"].values():
        assert "torch" in reason


def test_check_a_generic_function_on_every_installed_backend(tmp_path, capsys):
    path = tmp_path / "generic.py"
    path.write_text("def f(x):\n    return (x**2).sum() + x @ x\n")
    argv = ["check", f"{path}:f", "--shape", "2", "--ops", "hvp_grad_and_value"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for backend in diffops.available_backends():
        assert backend in out
    assert "not applicable" not in out


def test_check_module_target_in_the_current_directory(tmp_path, monkeypatch, capsys):
    # As `python -m`: a module in the current directory is found without sys.path.
    (tmp_path / "my_model_module.py").write_text(
        "import numpy as np\n\n"
        "def f(x):\n    return np.sum(x**3)\n\n"
        "def df(x):\n    return 3 * x**2, np.sum(x**3)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    argv = ["check", "my_model_module:f", "--shape", "3", "--backends", "none"]
    assert main([*argv, "--supplied", "grad_and_value=df"]) == 0
    assert "supplied: df" in capsys.readouterr().out


def test_check_example_by_module_name_from_its_folder(monkeypatch, capsys):
    backend = _one_backend()
    monkeypatch.chdir(EXAMPLE.parent)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    monkeypatch.delitem(sys.modules, "rosenbrock", raising=False)
    argv = ["check", "rosenbrock:rosenbrock", "--shape", "3", "--backends", backend]
    assert main([*argv, "--ops", "grad_and_value"]) == 0
    assert "1 passed, 0 failed." in capsys.readouterr().out


def test_check_float32(capsys):
    backend = _one_backend()
    argv = [
        "check",
        TARGET,
        "--shape",
        "3",
        "--dtype",
        "float32",
        "--backends",
        backend,
    ]
    argv += ["--supplied", "hessian_grad_and_value=hessian_grad_and_value"]
    assert main([*argv, "--ops", "hessian_grad_and_value"]) == 0
    assert "(float32)" in capsys.readouterr().out


# ---------------------------------------------------------------------------------
# diffops check: usage errors (exit 2, a message, no traceback)


BAD_MODEL = """
import numpy as np

def fails(x):
    return np.log(x) / undefined_name

def vector(x):
    return x * 2

def listed(x):
    return [x[0], x[1]]

def gradient(x):
    return 2 * x, (x**2).sum()

constant = 3
"""


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["missing.py:f", "--shape", "3"], ["file not found: missing.py"]),
        (["{path}:nope", "--shape", "3"], ["no function 'nope'", "defines: fails"]),
        (["{path}:constant", "--shape", "3"], ["'constant'", "is int, not a function"]),
        (
            ["{path}:fails", "--shape", "3"],
            ["fails fails at x = [", "NameError", "undefined_name", "line 5"],
        ),
        (["{path}:vector"], ["give the input's shape (--shape 3)"]),
        (
            ["{path}:listed", "--shape", "3"],
            ["'listed' returned list", "Return an array, e.g. `xp.stack([...])`"],
        ),
        (
            ["{path}:gradient", "--shape", "3"],
            ["'gradient' returned tuple", "--supplied OPERATOR=FUNC"],
        ),
        (["{path}", "--shape", "3"], ["expected PATH.py:FUNC or module:FUNC"]),
        (["no_such_module_xyz:f", "--shape", "3"], ["cannot import module"]),
        (
            ["{path}:vector", "--shape", "3", "--ops", "grad_and_value"],
            ["grad_and_value needs a scalar function", "shape (3,)"],
        ),
        (
            ["{path}:vector", "--shape", "3", "--ops", "jacobian"],
            ["unknown operator 'jacobian'", "jacobian_and_value"],
        ),
        (
            ["{path}:vector", "--shape", "3", "--backends", "jaxx"],
            ["unknown backend 'jaxx'", "'jax'"],
        ),
        (
            ["{path}:vector", "--shape", "3", "--supplied", "jacobian=vector"],
            ["--supplied 'jacobian=vector'", "unknown operator"],
        ),
        (
            ["{path}:vector", "--shape", "3", "--supplied", "jacobian_and_value"],
            ["give OPERATOR=FUNC"],
        ),
        (["{path}:vector", "--shape", "a,b"], ["--shape 'a,b' is not a shape"]),
        (["{path}:vector", "--point", "[1, x]"], ["--point '[1, x]' is not a list"]),
        (
            ["{path}:vector", "--shape", "3", "--backends", "none"],
            ["nothing to check"],
        ),
    ],
)
def test_check_usage_errors(args, words, tmp_path, capsys):
    path = tmp_path / "bad_model.py"
    path.write_text(BAD_MODEL)
    argv = ["check", *(a.replace("{path}", str(path)) for a in args)]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("diffops check: error: ")
    assert "Traceback" not in err
    assert ".." not in err.replace("...", "")  # sentences end with one full stop
    for word in words:
        assert word in err, err


def test_check_file_that_fails_to_load(tmp_path, capsys):
    path = tmp_path / "broken.py"
    path.write_text("import numpy as np\nraise RuntimeError('no data file')\n")
    with pytest.raises(SystemExit) as info:
        main(["check", f"{path}:f", "--shape", "3"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "loading" in err
    assert "RuntimeError: no data file" in err
    assert "line 2" in err


def test_check_table_layout(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    argv = ["check", TARGET, "--shape", "3", "--backends", "none", "--supplied"]
    assert main([*argv, "hessian_grad_and_value=hessian_grad_and_value_wrong"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"diffops check {TARGET} at x = [")
    top = next(k for k, line in enumerate(lines) if line.split()[:2] == ["error", "vs"])
    assert lines[top].split() == ["error", "vs", "time", "per", "first"]
    assert lines[top + 1].split() == [
        "operator",
        "result",
        "fin.",
        "diff.",
        "call",
        "call",
    ]
    assert lines[top + 3] == "supplied: hessian_grad_and_value_wrong"
    assert lines[top + 4].startswith("hessian_grad_and_value  FAILED [1]")
    assert lines[top + 5].startswith("[1] supplied: hessian_grad_and_value_wrong")
    assert lines[-1] == "0 passed, 1 failed."


# ---------------------------------------------------------------------------------
# diffops demo


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["demo", "--models", "bananna"], ["unknown model 'bananna'", "'banana'"]),
        (["demo", "--backends", "jaxx"], ["unknown backend 'jaxx'", "'jax'"]),
    ],
)
def test_demo_rejects_unknown_names_with_usage_error(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    for word in words:
        assert word in captured.err


def test_demo_names_an_uninstalled_backend_and_its_extra(capsys, isolated_registry):
    import types

    module = types.ModuleType("absent")
    for op in diffops.ALL_DIFF_OPS:
        setattr(module, op, lambda func: func)
    module.EXTRA = "absentextra"
    diffops.register_backend("absent", diffops.AutodiffBackend(module, False))
    with pytest.raises(SystemExit) as info:
        main(["demo", "--backends", "absent"])
    assert info.value.code == 2
    assert "pip install diffops[absentextra]" in capsys.readouterr().err


def test_demo_json(capsys):
    backend = _one_backend()
    assert main(["demo", "--models", "linear", "--backends", backend, "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # nothing but JSON on standard output
    assert document["command"] == "demo"
    assert document["models"] == ["linear"]
    assert document["passed"] is True
    assert document["closed_form_tolerance"] == 1e-8
    startup = document["startup"][backend]
    assert startup["first_derivative_seconds"] > 0
    rows = document["results"]
    assert {r["operator"] for r in rows} == set(
        diffops.demo.applicable_ops(diffops.models.MODELS["linear"])
    )
    for row in rows:
        assert row["model"] == "linear"
        assert row["status"] == "passed"
        assert row["closed_form_error"] <= 1e-8
        assert row["max_rel_error_vs_finite_differences"] < 1e-6
        assert row["per_call_seconds"] > 0
        assert row["first_call_seconds"] > 0


def test_demo_help_lists_the_models(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    for name in diffops.models.MODELS:
        assert name in out


def test_demo_prints_each_table_once_and_accepts_any_case(capsys):
    backends = [b for b in ("autograd", "jax") if b in installed_selected_backends()]
    if not backends:
        pytest.skip("needs autograd or jax")
    argv = ["demo", "--models", "linear,LINEAR", "--backends", backends[0].upper()]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.count("linear: linear map") == 1
    assert "4 passed, 0 failed: checked against finite differences" in captured.out
    assert "closed forms to 1e-08" in captured.out.replace("\n", " ")
    assert "Output seems independent of input" not in captured.out + captured.err


# ---------------------------------------------------------------------------------
# What a terminal shows: every table fits 80 and 100 columns, in a pseudo-terminal
# and piped (where the width is COLUMNS, or 80)


def _screen(raw: bytes) -> list[str]:
    """The lines a terminal shows: a carriage return rewrites its line."""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line)
        lines.append(line.split("\r")[-1])
    return lines


def _environment(columns: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return env


def _in_terminal(argv: list[str], columns: int) -> tuple[int, list[str]]:
    """Run ``diffops ARGV`` in a pseudo-terminal ``columns`` wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "diffops", *argv],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_environment(None),
        cwd=EXAMPLE.parent.parent,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return process.wait(timeout=600), _screen(b"".join(chunks))


def _piped(argv: list[str], columns: int | None) -> tuple[int, list[str]]:
    """Run ``diffops ARGV`` with its output in a pipe (``COLUMNS`` set or not)."""
    done = subprocess.run(
        [sys.executable, "-m", "diffops", *argv],
        capture_output=True,
        env=_environment(columns),
        cwd=EXAMPLE.parent.parent,
        timeout=600,
    )
    return done.returncode, _screen(done.stdout)


COMMANDS = {
    "backends": (["backends"], 0),
    "check": (
        [
            "check",
            "examples/rosenbrock.py:rosenbrock",
            "--shape",
            "4",
            "--backends",
            "autograd",
            "--supplied",
            "hessian_grad_and_value=hessian_grad_and_value_wrong",
        ],
        1,
    ),
    "demo": (["demo", "--models", "banana", "--backends", "autograd,symnum"], 0),
}


@pytest.mark.parametrize("how", ["terminal", "piped"])
@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_output_fits_the_terminal(command, columns, how):
    require_backend("autograd")
    require_backend("symnum")
    argv, status = COMMANDS[command]
    if how == "terminal":
        code, lines = _in_terminal(argv, columns)
    else:  # piped: 80 columns unless COLUMNS says otherwise
        code, lines = _piped(argv, None if columns == 80 else columns)
    text = "\n".join(lines)
    assert code == status, text
    too_wide = [line for line in lines if len(line) > columns]
    assert not too_wide, text
    assert "…" not in text  # nothing is cut
    if command == "backends":
        assert all(name in text for name in diffops.registered_backends())
        return
    # Times carry their unit; results are spelled out.
    assert re.search(r"\d (µs|ms|s)\b", text)
    assert "passed" in text
    if command == "check":
        assert "FAILED [1]" in text
        assert "supplied: hessian_grad_and_value_wrong" in text
        assert "hessian_grad_and_value" in text
    if command == "demo":
        full = "mtp_hessian_grad_and_value" in text.split("operators by")[0]
        assert full == (columns == 100), text  # short names (with a key) at 80
        assert "error vs" in text
        assert "autograd" in text
        assert "16 passed, 0 failed" in text
