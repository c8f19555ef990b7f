"""Shared fixtures: backend selection, Hypothesis profile, registry isolation.

Backends come from ``DIFFOPS_TEST_BACKENDS`` (see ``_backends.py``); run e.g.

    DIFFOPS_TEST_BACKENDS=jax,torch CI=true python -m pytest
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from _backends import ENV_VAR, SELECTED_BACKENDS, in_ci, require_backend

settings.register_profile(
    "diffops",
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "diffops-thorough",
    parent=settings.get_profile("diffops"),
    max_examples=200,
    derandomize=False,
    database=None,
)
settings.load_profile(os.environ.get("DIFFOPS_HYPOTHESIS_PROFILE", "diffops"))

# jax_codegen's generated modules go to a directory of this run, not the user's cache
# (tests that check the cache set their own).
os.environ.setdefault(
    "DIFFOPS_CODEGEN_CACHE", tempfile.mkdtemp(prefix="diffops-codegen-tests-")
)


def pytest_configure(config: pytest.Config) -> None:
    # Autograd warns when a derivative is identically zero (the linear model's MHP).
    config.addinivalue_line(
        "filterwarnings", "ignore:Output seems independent of input:UserWarning"
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"diffops test backends ({ENV_VAR}): {', '.join(SELECTED_BACKENDS)}; "
        f"CI={'true' if in_ci() else 'false'}"
    ]


@pytest.fixture
def needs_backend():
    """``needs_backend(name)``: skip/fail (in CI) if ``name`` is not installed."""
    return require_backend


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let a test register backends; the registry is restored afterwards."""
    from diffops import registry

    monkeypatch.setattr(
        registry, "_REGISTERED_BACKENDS", dict(registry._REGISTERED_BACKENDS)
    )
    return


@pytest.fixture
def jax_x64_disabled() -> Iterator[None]:
    """Run with ``jax_enable_x64`` False (JAX's default), restoring the old value."""
    require_backend("jax")
    import jax

    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


class CompileCounter:
    """Counts XLA backend compilations reported through ``jax.monitoring``."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: str, duration: float, **kwargs: object) -> None:
        if event == self.EVENT:
            self.count += 1


@pytest.fixture
def jax_compiles() -> Iterator[CompileCounter]:
    require_backend("jax")
    import jax.monitoring

    counter = CompileCounter()
    jax.monitoring.register_event_duration_secs_listener(counter)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(counter)
