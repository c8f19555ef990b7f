"""``import diffops`` imports no framework; availability does not import."""

from __future__ import annotations

import pytest

import _child as child

FRAMEWORKS = ("jax", "torch", "autograd", "symnum", "sympy", "jaxlib")


def run_python(code: str) -> str:
    return child.run_python(code, timeout=120).stdout.strip()


def imported_after(statements: str) -> list[str]:
    code = (
        f"import sys\n{statements}\n"
        f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    return eval(run_python(code))  # a list literal printed by the child


def test_import_diffops_imports_no_framework():
    assert imported_after("import diffops") == []


def test_availability_detection_imports_no_framework():
    statements = (
        "import diffops\n"
        "names = diffops.registered_backends()\n"
        "[diffops.get_backend(n).available for n in names]\n"
        "diffops.available_backends()"
    )
    assert imported_after(statements) == []


def test_building_derivative_functions_imports_no_framework():
    # Derivative functions are built lazily: nothing is imported until the first call.
    statements = (
        "import diffops\n"
        "for b in diffops.available_backends():\n"
        "    if b != 'symnum':\n"
        "        diffops.grad_and_value(lambda x: x, backend=b)\n"
        "    else:\n"
        "        diffops.grad_and_value(lambda x: x, backend=b, arg_shape=(2,))\n"
        "diffops.wrap_function(len, None)"
    )
    assert imported_after(statements) == []


@pytest.mark.parametrize(
    "module", ["diffops.models", "diffops.errors", "diffops.boundary", "diffops.api"]
)
def test_submodules_import_no_framework(module):
    assert imported_after(f"import {module}") == []


def test_import_diffops_in_the_test_process_has_frameworks_lazy():
    import diffops

    for name in diffops.registered_backends():
        record = diffops.get_backend(name)
        assert isinstance(record.available, bool)
