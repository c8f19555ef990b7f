"""The operator table: every differential operator, described once.

Everything that needs a fact about an operator reads it from here: the NumPy boundary
(which output is a closure, the shape its argument takes), derivative-function reprs
and docstrings, the checker (which output is the derivative of which), SymNum's
reshaping, the demo and the benchmarks. Adding an operator means one row in
:data:`OPERATORS` plus, in each backend, the operator itself.

Shapes are written with two letters: ``S`` is the shape of the input ``x`` and ``F``
the shape of the value ``f(x)`` (``()`` for scalar functions), so ``("F", "S")`` is
``F + S``. Every output other than the value is a derivative of a lower-order output:
an array output is its full derivative (shape: that output's shape ``+ S``), and a
product closure contracts that derivative with its argument, either over the leading
axes (``side="left"``, a vector-Jacobian product) or over the trailing ``S`` axes
(``side="right"``, a Jacobian-vector product).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

Shape = tuple[int, ...]
ShapeSpec = tuple[Literal["S", "F"], ...]


def shape_of(spec: ShapeSpec, s: Shape, f: Shape) -> Shape:
    """Concrete shape of a shape spec.

    Args:
        spec: Letters ``"S"`` and ``"F"``, e.g. ``("F", "S")``.
        s: Input shape ``S``.
        f: Value shape ``F``.

    Returns:
        The concatenated shape, e.g. ``f + s``.
    """
    shape: Shape = ()
    for letter in spec:
        shape += s if letter == "S" else f
    return shape


def spec_text(spec: ShapeSpec) -> str:
    """``("F", "S")`` as ``"F + S"``; ``()`` as ``"()"``."""
    return " + ".join(spec) if spec else "()"


class ArrayOutput(NamedTuple):
    """An array returned by an operator.

    Attributes:
        name: Name in return tuples and messages, e.g. ``"hessian"``.
        shape: Shape spec, e.g. ``("S", "S")``.
        of: The output this one is the derivative of (``None`` for the value).
        math: Index formula.
    """

    name: str
    shape: ShapeSpec
    of: str | None
    math: str


class Closure(NamedTuple):
    """A product closure returned first by an operator.

    Attributes:
        name: Name in return tuples and messages, e.g. ``"vjp"``.
        arg: Shape spec of the closure's argument.
        out: Shape spec of what the closure returns.
        of: The output whose derivative the closure contracts with its argument.
        side: ``"left"``: the argument is contracted with the derivative's leading
            axes (reverse mode); ``"right"``: with its trailing ``S`` axes (forward
            mode).
        arg_kind: What the argument is shaped like, for messages.
        expression: The product as an array expression.
        math: The product as an index formula.
    """

    name: str
    arg: ShapeSpec
    out: ShapeSpec
    of: str
    side: Literal["left", "right"]
    arg_kind: str
    expression: str
    math: str


ARRAYS: Mapping[str, ArrayOutput] = {
    "value": ArrayOutput("value", ("F",), None, "f(x)"),
    "grad": ArrayOutput("grad", ("S",), "value", "grad[k] = ∂f/∂x[k]"),
    "hessian": ArrayOutput(
        "hessian", ("S", "S"), "grad", "hessian[j, k] = ∂²f/(∂x[j] ∂x[k])"
    ),
    "jacobian": ArrayOutput(
        "jacobian", ("F", "S"), "value", "jacobian[i, k] = ∂f[i]/∂x[k]"
    ),
}
"""The array outputs, by name."""

CLOSURES: Mapping[str, Closure] = {
    "vjp": Closure(
        "vjp",
        ("F",),
        ("S",),
        "value",
        "left",
        "function value (shape F)",
        "vjp(v) = v @ j",
        "vjp(v)[k] = Σ_i v[i] ∂f[i]/∂x[k]",
    ),
    "mtp": Closure(
        "mtp",
        ("S", "S"),
        ("S",),
        "hessian",
        "left",
        "Hessian (shape S + S)",
        "mtp(m) = sum(m[None, :, :] * t, axis=(-1, -2))",
        "mtp(m)[i] = Σ_jk m[j, k] ∂³f/(∂x[i] ∂x[j] ∂x[k])",
    ),
    "mhp": Closure(
        "mhp",
        ("F", "S"),
        ("S",),
        "jacobian",
        "left",
        "Jacobian (shape F + S)",
        "mhp(m) = sum(m[:, :, None] * h, axis=(0, 1))",
        "mhp(m)[k] = Σ_ij m[i, j] ∂²f[i]/(∂x[j] ∂x[k])",
    ),
    "jvp": Closure(
        "jvp",
        ("S",),
        ("F",),
        "value",
        "right",
        "input (shape S)",
        "jvp(v) = j @ v",
        "jvp(v)[i] = Σ_k ∂f[i]/∂x[k] v[k]",
    ),
    "hvp": Closure(
        "hvp",
        ("S",),
        ("S",),
        "grad",
        "right",
        "input (shape S)",
        "hvp(v) = h @ v",
        "hvp(v)[j] = Σ_k ∂²f/(∂x[j] ∂x[k]) v[k]",
    ),
}
"""The product closures, by name."""


class Operator(NamedTuple):
    """One differential operator: what it needs and what it returns.

    Attributes:
        name: Operator name, e.g. ``"grad_and_value"``; it spells the return order.
        outputs: Names of the returned outputs in order: a closure (if any) first,
            then arrays from the highest derivative down to ``"value"``.
        scalar_only: Whether the function must return a 0-d value.
        summary: One line saying what the operator builds.
    """

    name: str
    outputs: tuple[str, ...]
    scalar_only: bool
    summary: str

    @property
    def closure(self) -> Closure | None:
        """The product closure returned first, or ``None``."""
        return CLOSURES.get(self.outputs[0])

    @property
    def arrays(self) -> tuple[ArrayOutput, ...]:
        """The array outputs, in return order."""
        return tuple(ARRAYS[name] for name in self.outputs if name in ARRAYS)

    @property
    def matrix(self) -> str | None:
        """The Jacobian or Hessian output (what ``sparsity=`` makes sparse), if any."""
        return next((o for o in self.outputs if o in ("jacobian", "hessian")), None)

    @property
    def order(self) -> int:
        """The highest order of derivative computed (a closure's included)."""
        orders = {"value": 0, "grad": 1, "jacobian": 1, "hessian": 2}
        closure = self.closure
        top = orders[closure.of] + 1 if closure is not None else 0
        return max(top, *(orders[a.name] for a in self.arrays))

    @property
    def n_outputs(self) -> int:
        """Length of the returned tuple."""
        return len(self.outputs)

    def array_shapes(self, s: Shape, f: Shape) -> tuple[Shape, ...]:
        """Shapes of the array outputs, in return order.

        Args:
            s: Input shape ``S``.
            f: Value shape ``F``.

        Returns:
            One shape per array output.
        """
        return tuple(shape_of(a.shape, s, f) for a in self.arrays)

    def closure_arg_shape(self, s: Shape, f: Shape) -> Shape:
        """Shape that the closure's argument must have.

        Args:
            s: Input shape ``S``.
            f: Value shape ``F``.

        Returns:
            E.g. ``F`` for ``vjp``, ``F + S`` for ``mhp`` and ``S + S`` for ``mtp``.

        Raises:
            ValueError: If the operator returns no closure.
        """
        closure = self.closure
        if closure is None:
            msg = f"{self.name} returns no product closure."
            raise ValueError(msg)
        return shape_of(closure.arg, s, f)

    @property
    def returns(self) -> str:
        """The return tuple with shapes, e.g. ``"(grad, value); grad has shape S"``."""
        parts = []
        closure = self.closure
        if closure is not None:
            parts.append(
                f"{closure.name}({'v' if len(closure.arg) == 1 else 'm'}) maps shape "
                f"{spec_text(closure.arg)} to shape {spec_text(closure.out)}"
            )
        value_shape = "()" if self.scalar_only else "F"
        for array in self.arrays:
            shape = value_shape if array.name == "value" else spec_text(array.shape)
            parts.append(f"{array.name} has shape {shape}")
        return f"({', '.join(self.outputs)}); {'; '.join(parts)}"

    @property
    def math(self) -> str:
        """The highest derivative as an index formula (closures: also as arrays)."""
        closure = self.closure
        if closure is not None:
            return f"{closure.expression}, i.e. {closure.math}"
        return ARRAYS[self.outputs[0]].math


OPERATORS: Mapping[str, Operator] = {
    op.name: op
    for op in (
        Operator(
            "vjp_and_value",
            ("vjp", "value"),
            False,
            "the vector-Jacobian product closure and the value",
        ),
        Operator(
            "grad_and_value",
            ("grad", "value"),
            True,
            "the gradient and value of a scalar function",
        ),
        Operator(
            "hessian_grad_and_value",
            ("hessian", "grad", "value"),
            True,
            "the Hessian, gradient and value of a scalar function",
        ),
        Operator(
            "mtp_hessian_grad_and_value",
            ("mtp", "hessian", "grad", "value"),
            True,
            "the matrix-Tressian product closure, Hessian, gradient and value of a "
            "scalar function",
        ),
        Operator(
            "jacobian_and_value",
            ("jacobian", "value"),
            False,
            "the Jacobian and value of an array function",
        ),
        Operator(
            "mhp_jacobian_and_value",
            ("mhp", "jacobian", "value"),
            False,
            "the matrix-Hessian product closure, Jacobian and value of an array "
            "function",
        ),
        Operator(
            "jvp_and_value",
            ("jvp", "value"),
            False,
            "the Jacobian-vector product closure (forward mode) and the value",
        ),
        Operator(
            "hvp_grad_and_value",
            ("hvp", "grad", "value"),
            True,
            "the Hessian-vector product closure, gradient and value of a scalar "
            "function, without forming the Hessian",
        ),
    )
}
"""Every operator, by name."""

DIFF_OPS: tuple[str, ...] = (
    "vjp_and_value",
    "grad_and_value",
    "hessian_grad_and_value",
    "mtp_hessian_grad_and_value",
    "jacobian_and_value",
    "mhp_jacobian_and_value",
)
"""The operators of ``mici.autodiff``, in Mici's order (code written for Mici iterates
over it)."""

ALL_DIFF_OPS: tuple[str, ...] = tuple(OPERATORS)
"""Every operator diffops defines: ``DIFF_OPS`` and the ones beyond Mici's."""

JACOBIAN_MODES: tuple[str, ...] = ("auto", "forward", "reverse")
"""Jacobian modes of the ``jax`` and ``torch`` backends: ``auto`` uses forward mode
when the output has more elements than the input."""

JACOBIAN_OPTIONS: Mapping[str, tuple[str, ...]] = {
    name: ("mode",) for name, op in OPERATORS.items() if "jacobian" in op.outputs
}
"""The options of the operators that form a Jacobian, on backends with Jacobian
modes (``jax``, ``jax_nojit``, ``jax_codegen``, ``torch``)."""

HESSIAN_COLORINGS: tuple[str, ...] = ("auto", "star", "acyclic")
"""Colorings of sparse Hessians (``coloring=``, with ``sparsity=``): ``star`` reads
each entry directly from one Hessian-vector product; ``acyclic`` needs fewer
products and recovers the entries by substitution; ``auto`` takes acyclic where that
was measured faster (it saves at least 3 products)."""

SPARSE_OUTPUTS: Mapping[str, str] = {
    name: op.matrix for name, op in OPERATORS.items() if op.matrix is not None
}
"""The operators that take ``sparsity=``, and which of their outputs becomes sparse."""

SPARSE_OPTIONS: Mapping[str, tuple[str, ...]] = {
    name: ("sparsity", "coloring") if matrix == "hessian" else ("sparsity",)
    for name, matrix in SPARSE_OUTPUTS.items()
}
"""diffops' own options of the sparse operators (never passed to a backend)."""
