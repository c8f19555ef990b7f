"""Exceptions of the code generator.

Both subclass :class:`NotImplementedError` (the program is valid JAX; the generator
has no translation for it) and :class:`diffops.errors.DiffopsError`.
"""

from __future__ import annotations

from diffops.errors import DiffopsError


class UnsupportedProgramError(DiffopsError, NotImplementedError):
    """The program has no NumPy translation (a dtype, symbolic shapes)."""


class UnsupportedPrimitiveError(UnsupportedProgramError):
    """A JAX primitive of the program has no translation in ``diffops.codegen``.

    Attributes:
        primitives: The primitives without a translation, sorted.
    """

    def __init__(self, primitives: list[str], name: str = "the function"):
        self.primitives = sorted(set(primitives))
        listed = ", ".join(repr(p) for p in self.primitives)
        plural = "s" if len(self.primitives) > 1 else ""
        msg = (
            f"diffops.codegen has no NumPy translation for the JAX primitive{plural} "
            f'{listed} used by {name}; use backend="jax" (compiled by XLA) for this '
            f"function, or rewrite it without {listed}."
        )
        super().__init__(msg)
