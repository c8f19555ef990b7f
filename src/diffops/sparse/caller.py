"""The per-call path of a sparse operator: one plan per call signature.

On the first call with a new signature (input shape and dtype, arguments' structure
and shapes) the structure is detected (or the given pattern checked), a plan chosen
(:mod:`diffops.sparse.plans`) and the backend's program for it built; later calls
with that signature run the program and wrap the non-zero values as a CSR array.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from diffops.backends.capabilities import compiled, sparse_support
from diffops.backends.support import call_signature
from diffops.boundary import make_caller
from diffops.boundary.inputs import framework_arguments
from diffops.sparse import kernels
from diffops.sparse.patterns import (
    SPARSE_OPS,
    Structure,
    canonical,
    check_covers,
    given_pattern,
    symmetric,
)
from diffops.sparse.plans import Plan, hessian_plan, jacobian_plan

if TYPE_CHECKING:
    from diffops.backends.protocol import Backend
    from diffops.operators import Operator

PLANS_KEPT = 32
"""Plans kept per sparse derivative function (least recently used out first)."""


class SparseCaller:
    """The per-call function of a sparse operator: plans per call signature.

    Attributes:
        last: The plan of the most recent call, or ``None``.
        timings: Seconds spent detecting the structure and choosing the plan for it.
    """

    def __init__(
        self,
        backend: Backend,
        op: Operator,
        func: Callable[..., Any],
        options: dict[str, Any],
        sparsity: Any,
        as_numpy: bool,
        coloring: str = "auto",
    ):
        self.backend, self.op, self.func = backend, op, func
        self.options, self.sparsity, self.as_numpy = options, sparsity, as_numpy
        self.coloring = coloring
        self.kind = SPARSE_OPS[op.name]
        self.position = op.outputs.index(self.kind)
        self.plans: collections.OrderedDict[Any, tuple[Plan, Callable[..., Any]]] = (
            collections.OrderedDict()
        )
        self.last: Plan | None = None
        self.timings: dict[str, float] = {}

    def __call__(self, x: Any, *args: Any) -> tuple[Any, ...]:
        """Evaluate at ``x``: the operator's tuple with the sparse matrix in place."""
        key = call_signature(x, args, compiled(self.backend).argument_signature)
        found = self.plans.get(key)
        if found is None:
            plan, call = self._build(x, args)
            self.plans[key] = (plan, call)
            while len(self.plans) > PLANS_KEPT:
                self.plans.popitem(last=False)
        else:
            plan, call = found
        self.last = plan
        try:
            out: tuple[Any, ...] = call(x, *args)
            if not self.as_numpy:
                return out
            values = out[self.position]
            if type(values) is not np.ndarray:
                values = np.asarray(values)
            if plan.gather_after:
                values = plan.finish(values)
            matrix = plan.matrix(values)
        finally:
            if found is None:
                kernels.start_loading()  # the kernels the first call ran as Python
        return (*out[: self.position], matrix, *out[self.position + 1 :])

    def structure(
        self, x: Any, args: tuple[Any, ...]
    ) -> tuple[Any, tuple[str, ...], tuple[int, ...]]:
        """The pattern at ``x``'s shape, the product modes available, the shape F."""
        backend = sparse_support(self.backend)
        n_in = math.prod(np.shape(x))
        detected, f_shape = None, None
        modes: tuple[str, ...] = ("forward", "reverse")
        if isinstance(self.sparsity, str) or backend.can_detect:
            # Detection traces the function with the operator's checks (their
            # errors come first) and may give the value's shape too.
            found = backend.sparsity(self.kind, self.func, x, args, self.op.name)
            if isinstance(found, Structure):
                found, modes, f_shape = found
            detected = canonical(found)
        if f_shape is None:
            arrays = framework_arguments(self.backend, args, np.dtype(x.dtype))
            f_shape = backend.value_shape(
                self.op.name, self.func, x, arrays, self.options
            )
        n_out = math.prod(f_shape) if self.kind == "jacobian" else n_in
        if isinstance(self.sparsity, str):
            assert detected is not None
            pattern = detected
        else:
            pattern = given_pattern(self.sparsity, n_out, n_in, self.kind)
            if detected is not None:
                check_covers(pattern, detected, self.kind)
        if self.kind == "hessian":
            pattern = symmetric(pattern)
        return pattern, modes, f_shape

    def plan(
        self, pattern: Any, modes: tuple[str, ...], x: Any, f_shape: tuple[int, ...]
    ) -> Plan:
        """The plan for ``pattern`` at ``x``'s shape."""
        dtype = np.dtype(x.dtype)
        x_shape = tuple(np.shape(x))
        # Products (or the dense matrix) are gathered (and substituted) in NumPy
        # after the program, unless it must return the finished matrix (a closure
        # of it, or framework arrays) or its backend gathers inside it for less
        # (substitution stays after it: Numba's pass beats prefix sums in XLA).
        in_program = not self.as_numpy or self.op.closure is not None
        if self.kind == "hessian":
            plan = hessian_plan(pattern, x_shape, dtype, self.coloring, in_program)
        else:
            mode = str(self.options.get("mode", "auto")).lower()
            if mode == "auto" and "forward" not in modes:
                mode = "reverse"
            plan = jacobian_plan(pattern, x_shape, f_shape, dtype, mode)
        gathers = sparse_support(self.backend).gathers_in_program
        if in_program or (gathers and plan.substitution is None):
            return plan
        return dataclasses.replace(plan, gather_after=True)

    def _build(self, x: Any, args: tuple[Any, ...]) -> tuple[Plan, Callable[..., Any]]:
        """The plan and its caller."""
        start = time.perf_counter()
        pattern, modes, f_shape = self.structure(x, args)
        detected = time.perf_counter()
        plan = self.plan(pattern, modes, x, f_shape)
        planned = time.perf_counter()
        self.timings = {"detect": detected - start, "plan": planned - detected}
        program = sparse_support(self.backend).sparse_operator(
            self.op.name, self.func, self.options, plan
        )
        call = make_caller(
            self.backend,
            self.op,
            self.func,
            self.options,
            as_numpy=self.as_numpy,
            program=program,
        )
        return plan, call
