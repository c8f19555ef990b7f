"""The command line: ``diffops --version``, ``backends``, ``check`` and ``demo``."""

from __future__ import annotations

import json
import sys
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
    note = next(line for line in out.splitlines() if line.startswith("[1]"))
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


def test_check_module_target(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_model_module.py").write_text(
        "import numpy as np\n\n"
        "def f(x):\n    return np.sum(x**3)\n\n"
        "def df(x):\n    return 3 * x**2, np.sum(x**3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["check", "my_model_module:f", "--shape", "3", "--backends", "none"]
    assert main([*argv, "--supplied", "grad_and_value=df"]) == 0
    assert "supplied: df" in capsys.readouterr().out


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


def test_check_plain_text_without_rich(monkeypatch, capsys):
    for name in ("rich", "rich.console", "rich.table", "rich.progress"):
        monkeypatch.setitem(sys.modules, name, None)
    argv = ["check", TARGET, "--shape", "3", "--backends", "none", "--supplied"]
    assert main([*argv, "hessian_grad_and_value=hessian_grad_and_value_wrong"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"diffops check {TARGET}")
    assert lines[1].split() == [
        "source",
        "operator",
        "result",
        "max",
        "abs",
        "err",
        "max",
        "rel",
        "err",
        "per",
        "call",
        "first",
        "call",
    ]
    assert "FAILED [1]" in lines[2]
    assert lines[3].startswith("[1] supplied: hessian_grad_and_value_wrong")


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
    for op in diffops.DIFF_OPS:
        setattr(module, op, lambda func: func)
    module.EXTRA = "absentextra"
    diffops.register_backend("absent", diffops.AutodiffBackend(module, False))
    with pytest.raises(SystemExit) as info:
        main(["demo", "--backends", "absent"])
    assert info.value.code == 2
    assert "pip install diffops[absentextra]" in capsys.readouterr().err


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
    assert (
        "4 passed, 0 failed: checked against finite differences and against the "
        in (captured.out)
    )
    assert "closed forms to 1e-08" in captured.out
    assert "Output seems independent of input" not in captured.out + captured.err
