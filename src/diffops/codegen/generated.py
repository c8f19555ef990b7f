"""The generated function object: its source is all it needs, and its pickled form.

Nothing here imports JAX: a :class:`Generated` unpickles and runs in a process where
JAX is not installed (or cannot initialise, as in a ``fork`` child of a process that
used it).
"""

from __future__ import annotations

import hashlib
import linecache
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

AvalSpec = tuple[tuple[int, ...], str]
"""Shape and dtype name of an input or output, e.g. ``((2,), "float64")``."""


def load_function(source: str, name: str) -> Callable[..., tuple[Any, ...]]:
    """Execute a generated module's source and return its function ``name``.

    The source is registered with :mod:`linecache`, so tracebacks through generated
    code show its lines.

    Args:
        source: Module source from :mod:`diffops.codegen`.
        name: Name of the entry function.

    Returns:
        The function.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    filename = f"<diffops.codegen {name} {digest}>"
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"diffops_codegen_{name}"}
    exec(code, namespace)
    function: Callable[..., tuple[Any, ...]] = namespace[name]
    return function


@dataclass(eq=False, repr=False)
class Generated:
    """A JAX program as a NumPy function, with its source.

    Calling it calls :attr:`function`: NumPy arrays in (the traced program's inputs,
    flattened, of the traced shapes and dtypes), a tuple of NumPy arrays out. With
    ``packed_outputs = n``, the first ``n`` outputs leave as one flat sequence of
    their elements (a tuple of Python numbers in scalar mode, a float64 array in
    array mode); with ``packed_inputs = n``, the first ``n`` inputs arrive as one such
    sequence (either form). That is how a closure's residuals travel from the
    function that computes them to the function that applies the closure.
    Pickling stores the source only; unpickling executes it (no JAX needed).

    Attributes:
        source: Python source of the module (imports only ``math`` and ``numpy``).
        name: Name of the entry function in the source.
        mode: ``"scalar"`` (straight-line Python floats) or ``"array"`` (NumPy calls).
        primitives_used: JAX primitives of the program (before simplification).
        in_avals: ``(shape, dtype)`` of each input.
        out_avals: ``(shape, dtype)`` of each output.
        packed_inputs: Number of leading inputs received as one flat sequence.
        packed_outputs: Number of leading outputs returned as one flat sequence.
        function: The loaded entry function.
    """

    source: str
    name: str
    mode: str
    primitives_used: tuple[str, ...]
    in_avals: tuple[AvalSpec, ...]
    out_avals: tuple[AvalSpec, ...]
    packed_inputs: int = 0
    packed_outputs: int = 0
    function: Callable[..., tuple[Any, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.primitives_used = tuple(self.primitives_used)
        self.in_avals = tuple((tuple(s), str(d)) for s, d in self.in_avals)
        self.out_avals = tuple((tuple(s), str(d)) for s, d in self.out_avals)
        self.function = load_function(self.source, self.name)

    def __call__(self, *args: Any) -> tuple[np.ndarray[Any, Any], ...]:
        """Run the generated function.

        Args:
            *args: One NumPy array per input (``in_avals``).

        Returns:
            One NumPy array per output (``out_avals``; 0-d outputs as NumPy scalars).
        """
        return self.function(*args)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Generated, tuple(getattr(self, name) for name in _FIELDS))

    def record(self) -> dict[str, Any]:
        """Everything needed to rebuild it, as JSON-compatible data."""
        data = {name: getattr(self, name) for name in _FIELDS}
        data["primitives_used"] = list(self.primitives_used)
        for key in ("in_avals", "out_avals"):
            data[key] = [[list(s), d] for s, d in data[key]]
        return data

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Generated:
        """Rebuild from :meth:`record`'s data."""
        return cls(**{name: record[name] for name in _FIELDS if name in record})

    def __repr__(self) -> str:
        ins = ", ".join(f"{d}{list(s)}" for s, d in self.in_avals)
        outs = ", ".join(f"{d}{list(s)}" for s, d in self.out_avals)
        lines = self.source.count("\n")
        return (
            f"<Generated {self.name}({ins}) -> ({outs}), {self.mode} mode, "
            f"{lines} lines>"
        )


_FIELDS = tuple(f.name for f in fields(Generated) if f.init)
"""The constructor's arguments: what pickling and :meth:`Generated.record` keep."""
