"""The command line: ``diffops --version``, ``backends`` and ``demo``."""

from __future__ import annotations

import pytest

import diffops
from _backends import installed_selected_backends
from diffops.cli import main


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
    assert "cases matched the closed forms" in captured.out
    assert "Output seems independent of input" not in captured.out + captured.err
