"""Which backends the tests run on, chosen from the environment (einops-style).

``DIFFOPS_TEST_BACKENDS`` is a comma-separated list of backend names (default: every
registered backend). A selected backend whose framework is not installed is skipped,
except when ``CI`` is ``"true"``: then the test fails, so CI can never pass by
silently skipping a backend.
"""

from __future__ import annotations

import os

import pytest

import diffops

ENV_VAR = "DIFFOPS_TEST_BACKENDS"


def parse_backends(value: str | None) -> tuple[str, ...]:
    """Backend names from the value of ``DIFFOPS_TEST_BACKENDS`` (``None``: all)."""
    if value is None or not value.strip():
        return diffops.registered_backends()
    names = [name.strip().lower() for name in value.split(",")]
    return tuple(dict.fromkeys(name for name in names if name))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


SELECTED_BACKENDS: tuple[str, ...] = parse_backends(os.environ.get(ENV_VAR))


def require_backend(name: str) -> None:
    """Skip (outside CI) or fail (in CI) when ``name``'s framework is not installed.

    Tests of a backend left out of ``DIFFOPS_TEST_BACKENDS`` are skipped: that is the
    caller's choice, not a missing install.
    """
    if name not in SELECTED_BACKENDS:
        pytest.skip(f"backend {name!r} not selected in {ENV_VAR}")
    if diffops.get_backend(name).available:
        return
    msg = f"backend {name!r} is selected but its framework is not installed"
    if in_ci():
        pytest.fail(f"{msg} (CI=true: missing backends fail the run)")
    pytest.skip(msg)


def installed_selected_backends() -> tuple[str, ...]:
    """Selected backends that are installed; in CI, fail if any is missing."""
    for name in SELECTED_BACKENDS:
        if not diffops.get_backend(name).available and in_ci():
            pytest.fail(f"backend {name!r} is selected but not installed (CI=true)")
    return tuple(n for n in SELECTED_BACKENDS if diffops.get_backend(n).available)
