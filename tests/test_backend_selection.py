"""Backends are chosen from DIFFOPS_TEST_BACKENDS; in CI none may be missing."""

from __future__ import annotations

import pytest

import diffops
from _backends import SELECTED_BACKENDS, in_ci, parse_backends


def test_selected_backends_are_registered():
    registered = diffops.registered_backends()
    unknown = [name for name in SELECTED_BACKENDS if name not in registered]
    assert not unknown, f"DIFFOPS_TEST_BACKENDS names unknown backends {unknown}"
    assert SELECTED_BACKENDS, "no backend selected"


def test_no_selected_backend_missing_in_ci():
    # In CI a missing backend must fail the session, never be skipped silently.
    missing = [n for n in SELECTED_BACKENDS if not diffops.get_backend(n).available]
    if in_ci():
        assert not missing, (
            f"CI=true but the selected backends {missing} are not installed; install "
            f"them (pip install diffops[...]) or remove them from DIFFOPS_TEST_BACKENDS"
        )
    else:
        # Outside CI, missing backends are skipped test by test; still report them.
        assert set(missing) <= set(SELECTED_BACKENDS)


def test_parse_backends():
    assert parse_backends(None) == diffops.registered_backends()
    assert parse_backends("") == diffops.registered_backends()
    assert parse_backends(" JAX , torch,,jax") == ("jax", "torch")


def test_missing_backend_skips_outside_ci_and_fails_in_ci(
    monkeypatch, isolated_registry
):
    import types

    import _backends

    module = types.ModuleType("fake_backend")
    for op in diffops.DIFF_OPS:
        setattr(module, op, lambda func: func)
    diffops.register_backend("fake", diffops.AutodiffBackend(module, False))
    monkeypatch.setattr(_backends, "SELECTED_BACKENDS", (*SELECTED_BACKENDS, "fake"))
    require_backend = _backends.require_backend

    monkeypatch.setenv("CI", "false")
    for name in SELECTED_BACKENDS:  # installed, selected backends pass either way
        if diffops.get_backend(name).available:
            require_backend(name)
    with pytest.raises(pytest.skip.Exception):
        require_backend("fake")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_backend("fake")
    with pytest.raises(pytest.fail.Exception):
        _backends.installed_selected_backends()
    # A backend not selected is the caller's choice: skipped even in CI.
    monkeypatch.setattr(_backends, "SELECTED_BACKENDS", ("jax",))
    with pytest.raises(pytest.skip.Exception):
        require_backend("autograd")
