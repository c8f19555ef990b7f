"""``jax_codegen``: functions written with ``jax.numpy``, run as generated NumPy code.

Each operator is the ``jax`` backend's operator (so every operator, closure, extra
argument and option of ``jax`` is covered). Its program is traced by JAX once per call
signature (input shape and dtype, the extra arguments' structure, shapes and dtypes)
and :mod:`diffops.codegen` turns the traced program into Python source that needs
only NumPy and ``math``; calls run that source. Small programs become straight-line
scalar code, which skips XLA's dispatch; large ones NumPy array code.

A product closure is a second generated function, applied to the closure's residuals,
which leave the first function packed into one flat sequence.

Pickling ships the generated source (:meth:`JaxCodegenBackend.export`), and the
user's function travels as pickled bytes that are unpickled only if a new call
signature has to be traced: a derivative function called once and then pickled runs
in another process where JAX cannot be imported, and in a ``fork`` child of a
process that computed with JAX.

Generated modules are cached on disk, keyed by the traced program
(:mod:`diffops.codegen.cache`: ``$DIFFOPS_CODEGEN_CACHE``, default
``~/.cache/diffops/codegen``; ``DIFFOPS_CODEGEN_CACHE=off`` disables it), so a second
process traces but does not generate again.

JAX is imported only to trace (on first use of a call signature).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from diffops.backends.capabilities import (
    Args,
    ExampleModels,
    GeneratedCode,
    SparseDerivatives,
    Structure,
)
from diffops.backends.jax import JAX
from diffops.backends.jax_codegen.program import GeneratedProgram, ShippedFunction
from diffops.backends.jax_codegen.signature import ExtraArgumentError, Function
from diffops.backends.protocol import Backend
from diffops.operators import JACOBIAN_OPTIONS

__all__ = [
    "JAX_CODEGEN",
    "ExtraArgumentError",
    "GeneratedProgram",
    "JaxCodegenBackend",
    "ShippedFunction",
]


class JaxCodegenBackend(Backend, GeneratedCode, SparseDerivatives, ExampleModels):
    """``jax_codegen``: ``jax.numpy`` functions whose programs run as NumPy code."""

    name = "jax_codegen"
    framework = "jax"
    extra = "jax"
    title = "JAX"
    options = JACOBIAN_OPTIONS
    # Generated code builds new arrays for its outputs (array code copies views).
    fresh_outputs = True
    can_detect = True

    def operator(self, op_name: str, func: Function, **options: Any) -> Function:
        """A :class:`GeneratedProgram` (code generated at the first call)."""
        return GeneratedProgram(op_name, func, options)

    def explain_error(self, err: Exception, func: Function) -> Exception | None:
        """The ``jax`` backend's explanation of tracing errors."""
        import sys

        if "jax" not in sys.modules:
            return None
        return JAX.explain_error(err, func)

    # -- generated code ------------------------------------------------------------

    def export(self, program: Function) -> Any:
        """The generated code, the operator and the user's function (as bytes)."""
        if isinstance(program, GeneratedProgram):
            return program.export()
        return None

    def restore(self, state: Any) -> Function:
        """The program again from its generated code (nothing traced)."""
        op_name, options, func, entries = state
        return GeneratedProgram(op_name, func, options, entries)

    def source(self, program: Function) -> str | None:
        """The NumPy source generated for each call signature so far."""
        return program.source if isinstance(program, GeneratedProgram) else None

    def function_recipe(
        self, func: Function
    ) -> tuple[Callable[..., Function], tuple[Any, ...]] | None:
        """The user's function as bytes, unpickled only if it must be traced again."""
        if isinstance(func, ShippedFunction):
            return None  # pickles as its bytes
        return _shipped, (ShippedFunction.of(func),)

    # -- sparse derivatives --------------------------------------------------------

    def sparsity(
        self, kind: str, func: Function, x: Any, args: Args, op: str
    ) -> Structure:
        """The structure detected by the ``jax`` backend (from the jaxpr)."""
        return JAX.sparsity(kind, func, x, args, op)

    # -- example models ------------------------------------------------------------

    def namespace(self) -> SimpleNamespace:
        """The ``jax`` backend's example-model operations (``jax.numpy``)."""
        return JAX.namespace()


def _shipped(shipped: ShippedFunction) -> ShippedFunction:
    return shipped


JAX_CODEGEN = JaxCodegenBackend()
"""The ``jax_codegen`` backend."""
