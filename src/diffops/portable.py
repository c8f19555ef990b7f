"""User functions in a form that pickles, for objects rebuilt in another process.

Derivative functions and wrapped functions pickle as their recipe, which includes the
user's function. :func:`portable` stores that function by reference when pickle can
(module-level functions), by the backend's own recipe when it has one (SymNum's
generated functions), and otherwise by value with cloudpickle (lambdas, local
functions); :func:`restore` gives it back after unpickling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from diffops.backends.capabilities import generated_code
from diffops.errors import function_name

if TYPE_CHECKING:
    from diffops.backends.protocol import Backend


def portable(func: Any, backend: Backend) -> Any:
    """``func`` in a form that unpickles in a fresh process (undo with :func:`restore`).

    Args:
        func: The user's function (or any argument of a backend's recipe).
        backend: The backend it is written for.

    Returns:
        The backend's recipe if it has one (SymNum's generated functions live in
        temporary modules), else ``func`` itself if pickle can store it by
        reference, else cloudpickle bytes.

    Raises:
        pickle.PicklingError: If ``func`` must be pickled by value and cloudpickle
            is not installed.
    """
    import io
    import pickle

    recipe = generated_code(backend).function_recipe(func)
    if recipe is not None:
        rebuild, args = recipe
        return _Recipe(rebuild, tuple(portable(a, backend) for a in args))
    if not callable(func):
        return func
    try:
        pickle.dump(func, io.BytesIO())
    except (pickle.PicklingError, AttributeError, TypeError):
        try:
            import cloudpickle
        except ImportError:  # pragma: no cover - depends on environment
            msg = (
                f"The function {function_name(func)!r} cannot be pickled by reference "
                f"(lambdas and local functions cannot). Install cloudpickle "
                f"(`pip install diffops[pickle]`) or define it at module level."
            )
            raise pickle.PicklingError(msg) from None
        buffer = io.BytesIO()
        _by_value_pickler(cloudpickle)(buffer).dump(func)
        return _CloudPickled(buffer.getvalue())
    return func


# Modules whose functions cannot be pickled by reference because they are wrappers
# published under another module's name (autograd.numpy.sin claims to be numpy's),
# so cloudpickle would copy them by value and lose their derivative rules.
_WRAPPER_NAMESPACES = ("autograd.numpy", "autograd.scipy")


def _namespace_attribute(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)


def _by_value_pickler(cloudpickle: Any) -> type:
    """A cloudpickle pickler that stores framework wrapper functions by name."""
    import sys

    lookup: dict[int, tuple[str, str]] = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith(_WRAPPER_NAMESPACES):
            continue
        for attr, value in vars(module).items():
            if callable(value) and not isinstance(value, type):
                lookup.setdefault(id(value), (module_name, attr))

    class Pickler(cloudpickle.Pickler):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            where = lookup.get(id(obj))
            if where is not None and _namespace_attribute(*where) is obj:
                return (_namespace_attribute, where)
            return super().reducer_override(obj)

    return Pickler


class _CloudPickled:
    """Bytes of a function serialised by value with cloudpickle."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data


class _Recipe:
    """A function to rebuild by calling ``rebuild(*args)`` after unpickling."""

    __slots__ = ("args", "rebuild")

    def __init__(self, rebuild: Callable[..., Any], args: tuple[Any, ...]):
        self.rebuild = rebuild
        self.args = args


def restore(obj: Any) -> Any:
    """The function that :func:`portable` stored.

    Args:
        obj: What :func:`portable` returned, after a pickling round trip.

    Returns:
        The function (rebuilt from its recipe, or unpickled by value).
    """
    if isinstance(obj, _CloudPickled):
        import pickle

        return pickle.loads(obj.data)  # the caller's own data
    if isinstance(obj, _Recipe):
        return obj.rebuild(*[restore(a) for a in obj.args])
    return obj
