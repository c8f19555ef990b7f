"""Repository tools that measure diffops; not part of the installed package."""
