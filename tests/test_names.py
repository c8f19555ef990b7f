"""Informative ``__name__``, ``__qualname__``, ``repr`` and docstrings."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import diffops
import diffops.api
from _backends import SELECTED_BACKENDS, require_backend
from diffops.models import MODELS
from diffops.operators import (
    ARRAYS,
    HESSIAN_COLORINGS,
    JACOBIAN_MODES,
    OPERATORS,
    SPARSE_OPTIONS,
    SPARSE_OUTPUTS,
    spec_text,
)


def banana(x):
    return -(x[0] ** 2) / 2 - (x[1] - x[0] ** 2) ** 2


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
@pytest.mark.parametrize("op", diffops.ALL_DIFF_OPS)
def test_name_qualname_repr(backend, op):
    options = {"arg_shape": (2,)} if backend == "symnum" else {}
    derivative = getattr(diffops, op)(banana, backend=backend, **options)
    assert derivative.__name__ == f"{op}_of_banana"
    assert derivative.__qualname__ == f"{op}_of_banana"
    opts = ", arg_shape=(2,)" if backend == "symnum" else ""
    assert repr(derivative) == f"{op}(banana, backend={backend!r}{opts})"
    assert derivative.op_name == op
    assert derivative.backend == backend
    assert derivative.func is banana
    assert op in derivative.__doc__
    assert "banana" in derivative.__doc__


def test_repr_examples():
    assert repr(diffops.grad_and_value(banana, backend="jax")) == (
        "grad_and_value(banana, backend='jax')"
    )
    assert (
        repr(diffops.grad_and_value(banana)) == "grad_and_value(banana, backend='jax')"
    )


def test_repr_lowercases_backend_and_shows_options():
    derivative = diffops.jacobian_and_value(banana, backend="JAX", mode="forward")
    assert (
        repr(derivative) == "jacobian_and_value(banana, backend='jax', mode='forward')"
    )


def test_qualname_of_a_nested_function():
    def inner(x):
        return x

    derivative = diffops.vjp_and_value(inner, backend="autograd")
    assert derivative.__name__ == "vjp_and_value_of_inner"
    assert derivative.__qualname__ == (
        "vjp_and_value_of_test_qualname_of_a_nested_function.<locals>.inner"
    )


def test_name_of_a_lambda_and_a_callable_object():
    assert diffops.grad_and_value(lambda x: x, backend="autograd").__name__ == (
        "grad_and_value_of_<lambda>"
    )

    class Potential:
        def __call__(self, x):
            return x

    derivative = diffops.grad_and_value(Potential(), backend="autograd")
    assert derivative.__name__ == "grad_and_value_of_Potential"
    assert "Potential" in repr(derivative)


@pytest.mark.parametrize("backend", SELECTED_BACKENDS)
def test_names_survive_the_first_call(backend):
    require_backend(backend)
    func, options = MODELS["banana"].function(backend)
    derivative = diffops.hessian_grad_and_value(func, backend=backend, **options)
    derivative(np.array([0.1, 0.2]))
    assert derivative.__name__ == "hessian_grad_and_value_of_banana"
    assert repr(derivative).startswith("hessian_grad_and_value(banana, backend=")


def _section(doc: str, title: str) -> str:
    """The text of one section (``Args:``, ``Returns:``) of a Google docstring."""
    lines = doc.splitlines()
    start = lines.index(f"{title}:") + 1
    body = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break
        body.append(line)
    return "\n".join(body)


def _documented_args(doc: str) -> dict[str, str]:
    """The ``Args:`` entries, name to description (continuation lines joined)."""
    entries: dict[str, str] = {}
    name = None
    for line in _section(doc, "Args").splitlines():
        entry = re.match(r"^    (\*{0,2}\w+): (.*)$", line)
        if entry:
            name = entry.group(1)
            entries[name] = entry.group(2)
        elif line.startswith("        ") and name is not None:
            entries[name] += " " + line.strip()
    return entries


def _expected_options(op: str) -> set[str]:
    """The keywords ``op`` takes on the built-in backends, and ``sparsity``."""
    from diffops import registry

    options = {
        option
        for name in diffops.registered_backends()
        for option in registry.backend(name).options.get(op, ())
    }
    return options | set(SPARSE_OPTIONS.get(op, ()))


@pytest.mark.parametrize("op", diffops.ALL_DIFF_OPS)
def test_shortcuts_are_named_and_documented(op):
    # Every shortcut of diffops.api documents exactly its parameters, takes exactly
    # the options its operator has (operator table and backends' options), and
    # describes its outputs in the operator's return order with the table's shapes.
    shortcut = getattr(diffops.api, op)
    assert getattr(diffops, op) is shortcut
    assert shortcut.__name__ == op
    assert shortcut.__qualname__ == op
    spec = OPERATORS[op]
    doc = inspect.getdoc(shortcut)
    assert doc.splitlines()[0].startswith(f"Build ``x -> ({', '.join(spec.outputs)})``")

    parameters = inspect.signature(shortcut).parameters
    names = [
        f"**{name}" if p.kind is p.VAR_KEYWORD else name
        for name, p in parameters.items()
    ]
    documented = _documented_args(doc)
    assert list(documented) == names, f"{op}: Args {list(documented)} != {names}"
    assert list(parameters)[:2] == ["func", "backend"]
    options = {
        name
        for name, p in parameters.items()
        if p.kind is p.KEYWORD_ONLY and name != "as_numpy"
    }
    assert options == _expected_options(op), op
    assert documented["func"].startswith("Scalar-valued") == spec.scalar_only, op
    if "mode" in options:
        assert parameters["mode"].default == JACOBIAN_MODES[0]
        for mode in JACOBIAN_MODES:
            assert f'``"{mode}"``' in documented["mode"], (op, mode)
    if "sparsity" in options:
        assert parameters["sparsity"].default is None
        n_out = "prod(S)" if SPARSE_OUTPUTS[op] == "hessian" else "prod(F)"
        assert f"``({n_out}, prod(S))``" in documented["sparsity"], op
        assert "csr_array" in documented["sparsity"], op
    if "coloring" in options:
        assert parameters["coloring"].default == HESSIAN_COLORINGS[0]
        for coloring in HESSIAN_COLORINGS:
            assert f'``"{coloring}"``' in documented["coloring"], (op, coloring)

    returns = " ".join(_section(doc, "Returns").split())
    assert returns.startswith(f"Function ``x -> ({', '.join(spec.outputs)})``:"), op
    mentions = []
    for name in spec.outputs:
        if spec.closure is not None and name == spec.closure.name:
            mention = (
                f"``{name}`` maps an array of shape "
                f"``{spec_text(spec.closure.arg)}`` to shape "
                f"``{spec_text(spec.closure.out)}``"
            )
        elif name == "value":
            shape = "0-d" if spec.scalar_only else "of shape ``F``"
            mention = f"``value`` {shape}"
        else:
            mention = f"``{name}`` of shape ``{spec_text(ARRAYS[name].shape)}``"
            if name == SPARSE_OUTPUTS.get(op):
                n_out = "prod(S)" if name == "hessian" else "prod(F)"
                mention += f" (sparse: ``({n_out}, prod(S))``)"
        assert mention in returns, f"{op}: Returns lacks {mention!r}: {returns}"
        mentions.append(returns.index(mention))
    assert mentions == sorted(mentions), f"{op}: Returns not in return order"


def test_str_is_the_informative_repr():
    derivative = diffops.grad_and_value(banana, backend="autograd")
    assert str(derivative) == "grad_and_value(banana, backend='autograd')"
