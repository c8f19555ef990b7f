"""``mici.autodiff.autograd_wrapper``'s name for the autograd backend's operators.

Everything public in :mod:`diffops.backends.autograd` (one factory per
operator, framework arrays in and out).
"""

from diffops.backends.autograd import *  # noqa: F403
