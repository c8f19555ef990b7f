"""``mici.autodiff.symnum_wrapper``'s name for the symnum backend's operators.

Everything public in :mod:`diffops.backends.symnum` (one factory per
operator, framework arrays in and out).
"""

from diffops.backends.symnum import *  # noqa: F403
