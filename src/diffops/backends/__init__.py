"""The backends: one module per array framework, behind one declared protocol.

- :mod:`diffops.backends.protocol`: what a backend provides (:class:`Backend`);
- :mod:`diffops.backends.jax`, :mod:`~diffops.backends.autograd`,
  :mod:`~diffops.backends.symnum`, :mod:`~diffops.backends.torch`: the built-in ones;
- :mod:`diffops.backends.modules`: backends registered the ``mici.autodiff`` way.

No framework is imported until a derivative function on its backend is used.
"""
