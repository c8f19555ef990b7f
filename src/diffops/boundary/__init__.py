"""The NumPy boundary: the one place where user arrays cross into and out of a backend.

- :mod:`~diffops.boundary.inputs`: what a derivative function accepts, as arrays;
- :mod:`~diffops.boundary.caller`: the per-call path into a backend's program and
  back out (dtypes, packed results, NumPy scalars, no output aliasing the input);
- :mod:`~diffops.boundary.closures`: product closures that check and convert their
  argument;
- :mod:`~diffops.boundary.explain`: framework errors as diffops errors with a hint.

A backend only provides the hooks of :class:`~diffops.backends.protocol.Backend` and
its capabilities; everything here is shared by every backend.
"""

from diffops.boundary.caller import Caller, PackedLayouts, make_caller
from diffops.boundary.closures import ProductClosure, ShapedClosure
from diffops.boundary.explain import explain
from diffops.boundary.inputs import as_input_array, framework_input, unaliased

__all__ = [
    "Caller",
    "PackedLayouts",
    "ProductClosure",
    "ShapedClosure",
    "as_input_array",
    "explain",
    "framework_input",
    "make_caller",
    "unaliased",
]
