"""How the ``jax`` backend compiles a program: ``jax.jit``, sized to the program.

XLA's default CPU code generator (its fusion emitters) compiles a program unrolled
into thousands of scalar operations (a Python loop over a function's terms, and its
derivatives) in minutes; its older emitters in seconds. :class:`SizedProgram` counts
the equations of a program at its first call and picks the emitters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

Function = Callable[..., Any]

LARGE_PROGRAM = 5000
"""Most equations (sub-programs counted in) of a program that XLA's CPU compiler gets
with its default fusion emitters. A larger one (a Python loop unrolled into thousands
of scalar operations) compiles with its older emitters (:data:`LARGE_PROGRAM_OPTIONS`):
a dense Hessian unrolled into 9,800 equations in 4.8 s, not 34.4 s
(``python -m benchmarks.large_programs``, docs/backends.md). Smaller programs keep
the default: some run slower without it."""

LARGE_PROGRAM_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
"""XLA compile options of a program above :data:`LARGE_PROGRAM` equations on CPU."""


def jit(jax: ModuleType, program: Function, options: dict[str, Any]) -> Function:
    """``jax.jit(program, **options)``, sized to the program on CPU.

    Without ``compiler_options`` of the caller's: a :class:`SizedProgram` (XLA's
    older emitters for a large program on CPU).
    """
    if "compiler_options" in options:
        jitted: Function = jax.jit(program, **options)
        return jitted
    return SizedProgram(jax, program, options)


class SizedProgram:
    """``jax.jit(program)``, compiled with XLA's older emitters if it is large.

    The first call traces the program (``jax.jit(...).trace``: the trace that the
    call then compiles, not a second one) and counts its equations; above
    :data:`LARGE_PROGRAM` it and every later call run ``program`` jitted with
    :data:`LARGE_PROGRAM_OPTIONS`. The choice is made once, at the first call's
    shapes: a program traced at other shapes keeps it.

    Attributes:
        equations: The first call's program's equation count (``None`` before it).
    """

    def __init__(self, jax: ModuleType, program: Function, options: dict[str, Any]):
        self._jax, self._program, self._options = jax, program, options
        self._jitted = jax.jit(program, **options)
        self._call: Function = self._first
        self.equations: int | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the compiled program."""
        return self._call(*args, **kwargs)

    @property
    def settled(self) -> Function | None:
        """After the first call, the jitted function chosen (``None`` before it).

        Callers that keep the program call this instead from then on, one Python
        frame less per call (:func:`diffops.boundary.caller.make_caller`).
        """
        # ``==``: each access to ``self._first`` makes a new bound method.
        return None if self._call == self._first else self._call

    @property
    def large(self) -> bool:
        """Whether the program compiles with :data:`LARGE_PROGRAM_OPTIONS`."""
        return self.settled is not None and self._call is not self._jitted

    def _first(self, *args: Any, **kwargs: Any) -> Any:
        # Asked here, not when built: asking starts JAX's backend, and a process
        # forked before its parent computed with JAX must still be able to compute.
        jax, jitted = self._jax, self._jitted
        trace = getattr(jitted, "trace", None)  # older JAX: the default emitters
        if trace is not None and jax.default_backend() == "cpu":
            self.equations = equation_count(trace(*args, **kwargs).jaxpr.jaxpr)
            if self.equations > LARGE_PROGRAM:
                options = {**self._options, "compiler_options": LARGE_PROGRAM_OPTIONS}
                with contextlib.suppress(TypeError):  # jit without compiler_options
                    jitted = jax.jit(self._program, **options)
        self._call = jitted
        return jitted(*args, **kwargs)


def equation_count(jaxpr: Any) -> int:
    """The equations of ``jaxpr`` and of the sub-programs in their parameters."""
    return sum(
        1 + sum(equation_count(inner) for inner in inner_jaxprs(eqn))
        for eqn in jaxpr.eqns
    )


def inner_jaxprs(eqn: Any) -> Iterator[Any]:
    """The jaxprs in an equation's parameters (a closed jaxpr's own jaxpr)."""
    for param in eqn.params.values():
        for value in param if isinstance(param, tuple | list) else (param,):
            inner = getattr(value, "jaxpr", value)
            if hasattr(inner, "eqns"):
                yield inner
