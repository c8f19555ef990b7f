"""Mici-style module of the ``jax_codegen`` backend, from :mod:`diffops.compat`."""

from diffops.compat import wrapper_module

__all__, __getattr__ = wrapper_module("jax_codegen")
