"""From a program to module source: simplify, choose the mode, emit.

Scalar mode (straight-line Python floats, :mod:`diffops.codegen.scalar`) costs a
fixed time per scalar statement; array mode (:mod:`diffops.codegen.array`) costs a
fixed time per NumPy call plus time per element. :func:`emit_module` emits scalar
code when its estimated time is below the array code's, using the constants below,
measured on this kind of code with ``benchmarks/codegen_timing.py --calibrate``
(see its docstring). The scalar attempt is abandoned as soon as it passes the
statement count at which it could no longer win, so large programs cost nothing
extra to generate.

Measured crossover (Python 3.11, NumPy 2.4, this project's 2-core machine): a
scalar statement costs 40-60 ns (more in very long functions), a NumPy call on
small arrays 1-2 us. For the logistic model with its data as inputs (n = 2d), scalar
code wins for the value + gradient + Hessian up to d = 4 (d = 4: 35 us against 73 us)
and array code from d = 6 (85 us against 63 us); for the gradient alone the crossover
is near d = 8. banana and torus programs (d = 2, 3) are scalar, 10-20x faster than
their array code.
"""

from __future__ import annotations

import math
import re

from diffops.codegen.array import emit_array_function
from diffops.codegen.ir import Program
from diffops.codegen.module import Module
from diffops.codegen.scalar_function import emit_scalar_function
from diffops.codegen.scalar_terms import TooLarge

# Per-call cost model, in nanoseconds (see the module docstring).
SCALAR_STATEMENT_NS = 50.0
"""One scalar statement (a float operation and a local store)."""
SCALAR_BRIDGE_NS = 2500.0
"""A NumPy call in the middle of scalar code, with packing and unpacking."""
SCALAR_ELEMENT_NS = 12.0
"""Unpacking one input element or packing one output element."""
SCALAR_CALL_NS = 400.0
"""Calling a scalar function and building one output array."""
ARRAY_CALL_NS = 1700.0
"""One NumPy call on small arrays (array mode)."""
ARRAY_ELEMENT_NS = 1.0
"""One element (or one multiply-add of a contraction) in array mode."""
ARRAY_FIXED_NS = 1200.0
"""Entering ``np.errstate`` and returning (array mode)."""

SCALAR_MAX_STATEMENTS = 20_000
"""Never try scalar code longer than this (generation time grows with it)."""
SCALAR_MAX_ELEMENTS = 4096
"""Never try scalar code for programs holding a larger array (in elements)."""


def identifier(name: str) -> str:
    """``name`` made into a Python identifier."""
    text = re.sub(r"\W", "_", name) or "generated"
    return text if not text[0].isdigit() else f"f_{text}"


def array_cost_ns(program: Program) -> float:
    """Estimated time of one call of the program's array-mode function."""
    total = ARRAY_FIXED_NS
    for eqn in program.eqns:
        total += ARRAY_CALL_NS
        work = sum(o.aval.size for o in eqn.outputs)
        if eqn.prim == "dot_general":
            (lc, _), _ = eqn.params["dimension_numbers"]
            k = math.prod(eqn.inputs[0].aval.shape[d] for d in lc)
            work *= max(k, 1)
        else:
            work = max(work, sum(a.aval.size for a in eqn.inputs))
        total += ARRAY_ELEMENT_NS * work
    return total


def _largest(program: Program) -> int:
    sizes = [v.aval.size for v in program.inputs]
    for eqn in program.walk():
        sizes += [a.aval.size for a in eqn.inputs] + [o.aval.size for o in eqn.outputs]
    return max(sizes, default=0)


def emit_module(
    program: Program,
    name: str,
    mode: str = "auto",
    *,
    packed_inputs: int = 0,
    packed_outputs: int = 0,
) -> tuple[str, str]:
    """Source of a module defining ``name(*inputs) -> tuple of outputs``.

    Args:
        program: The simplified program.
        name: Function name (made into an identifier).
        mode: ``"auto"``, ``"scalar"`` or ``"array"``.
        packed_inputs: Inputs received as one flat sequence (see ``generate``).
        packed_outputs: Outputs returned as one flat sequence.

    Returns:
        ``(source, mode used)``.
    """
    name = identifier(name)
    if mode not in ("auto", "scalar", "array"):
        msg = f"mode must be 'auto', 'scalar' or 'array', not {mode!r}"
        raise ValueError(msg)
    small = mode == "scalar" or _largest(program) <= SCALAR_MAX_ELEMENTS
    if mode != "array" and small:
        array_ns = array_cost_ns(program)
        budget = (
            10**7
            if mode == "scalar"
            else min(int(array_ns / SCALAR_STATEMENT_NS) + 1, SCALAR_MAX_STATEMENTS)
        )
        module = Module(f"{name}: straight-line scalar code")
        fallback = emit_array_function(
            module,
            program,
            f"{name}_array",
            packed_inputs=packed_inputs,
            packed_outputs=packed_outputs,
        )
        try:
            stats = emit_scalar_function(
                module,
                program,
                name,
                fallback,
                budget,
                packed_inputs=packed_inputs,
                packed_outputs=packed_outputs,
            )
        except TooLarge:
            if mode == "scalar":
                raise
        else:
            scalar_ns = (
                SCALAR_CALL_NS * (1 + len(program.outputs))
                + SCALAR_STATEMENT_NS * stats.statements
                + SCALAR_BRIDGE_NS * stats.bridges
                + SCALAR_ELEMENT_NS * (stats.unpacked + stats.packed)
            )
            if mode == "scalar" or scalar_ns < array_ns:
                return module.source(), "scalar"
    module = Module(f"{name}: NumPy array code")
    emit_array_function(
        module,
        program,
        name,
        packed_inputs=packed_inputs,
        packed_outputs=packed_outputs,
    )
    return module.source(), "array"
