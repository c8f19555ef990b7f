"""``mici.autodiff.torch_wrapper``'s name for the torch backend's operators.

Everything public in :mod:`diffops.backends.torch` (one factory per
operator, framework arrays in and out).
"""

from diffops.backends.torch import *  # noqa: F403
