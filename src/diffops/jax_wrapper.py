"""``mici.autodiff.jax_wrapper``'s name for the jax backend's operators.

Everything public in :mod:`diffops.backends.jax` (one factory per
operator, framework arrays in and out).
"""

from diffops.backends.jax import *  # noqa: F403
