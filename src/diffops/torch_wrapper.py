"""``mici.autodiff.torch_wrapper``, from :mod:`diffops.compat`."""

from diffops.compat import wrapper_module

__all__, __getattr__ = wrapper_module("torch")
