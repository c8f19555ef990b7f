"""A derivative function under check: :class:`Supplied`, and :func:`densified`.

Sparse Jacobians and Hessians (``sparsity=``) are checked like dense ones:
:func:`densified` turns them into dense arrays before any check sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffops.errors import function_name
from diffops.operators import ARRAYS, Operator, shape_of

Function = Callable[..., Any]


@dataclass
class Supplied:
    """A derivative function under check and what it returned at ``x``.

    Attributes:
        op: The operator it implements.
        function: The derivative function (sparse outputs made dense).
        outputs: What it returned at ``x``, once called and found usable.
        usable: Whether its outputs have the operator's structure (the numeric
            checks run only then).
    """

    op: Operator
    function: Function
    outputs: tuple[Any, ...] | None = None
    usable: bool = False

    def position(self, name: str) -> int:
        """Position of output ``name`` in the operator's tuple."""
        return self.op.outputs.index(name)

    def output(self, name: str) -> Any:
        """Output ``name`` returned at ``x``."""
        assert self.outputs is not None
        return self.outputs[self.position(name)]

    def value_shape(self) -> tuple[int, ...]:
        """Shape ``F`` of the value returned at ``x``."""
        assert self.outputs is not None
        return tuple(np.shape(self.outputs[-1]))


def densified(op: Operator, function: Function) -> Function:
    """``function``, with sparse Jacobians and Hessians made dense.

    Args:
        op: The operator ``function`` implements.
        function: A derivative function, possibly returning ``scipy.sparse`` arrays.

    Returns:
        A function returning the same tuple with every sparse array dense, in the
        operator's shape.
    """

    def dense(x: Any, *args: Any) -> Any:
        out = function(x, *args)
        if not isinstance(out, tuple) or len(out) != op.n_outputs:
            return out
        items = list(out)
        for k, name in enumerate(op.outputs):
            item = items[k]
            if name in ARRAYS and hasattr(item, "toarray") and hasattr(item, "nnz"):
                shape = shape_of(ARRAYS[name].shape, np.shape(x), np.shape(out[-1]))
                items[k] = np.asarray(item.toarray()).reshape(shape)
        return tuple(items)

    dense.__name__ = function_name(function)
    return dense
