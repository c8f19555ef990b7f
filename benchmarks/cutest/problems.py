"""The sif2jax problems: discovery, the matrices each gives, functions and points.

Shared by the diffops harness and ``asdex_side.py`` (which runs in another virtual
environment), so it imports neither diffops nor asdex: only JAX, NumPy and sif2jax.

Each problem gives one or two matrices:

- ``hessian``: the objective's Hessian (unconstrained and bound-constrained problems;
  bounds do not enter derivatives);
- ``jacobian``: the constraint Jacobian, equality and inequality constraints
  concatenated and flattened (constrained problems and nonlinear equations);
- ``lagrangian``: the Hessian of ``f(x) + y · c(x)`` with respect to ``x``, the
  multipliers ``y`` passed as an extra argument (constrained problems and nonlinear
  equations).

Points: ``x0 + scale · N(0, 1)`` with a generator seeded from the run's seed and the
problem, size and matrix, so both harnesses use the same points; a point where the
function's value is not finite is drawn again with a scale ten times smaller, down to
``x0`` itself.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

CATEGORIES = {
    "unconstrained": "unconstrained_minimisation_problems",
    "bounded": "bounded_minimisation_problems",
    "constrained": "constrained_minimisation_problems",
    "equations": "nonlinear_equations_problems",
}
"""Our name for each sif2jax category → the sif2jax tuple that lists its problems."""

MATRICES = {
    "unconstrained": ("hessian",),
    "bounded": ("hessian",),
    "constrained": ("jacobian", "lagrangian"),
    "equations": ("jacobian", "lagrangian"),
}
"""The matrices measured for a problem of each category."""

DERIVATIVE = {"hessian": "hessian", "jacobian": "jacobian", "lagrangian": "hessian"}
"""Which derivative each matrix is."""

QUICK: dict[str, dict[str, int]] = {
    "ARWHEAD": {"n": 1000},
    "BDQRTIC": {"n": 1000},
    "BROYDN7D": {"n": 1000},
    "BROYDN3DLS": {"n": 1000},
    "ARGLINA": {"n": 50, "m": 100},
    "10FOLDTRLS": {"n": 100},
    "SROSENBR": {"n": 1000},
    "LISWET1": {},
    "HS111": {},
    "HS71": {},
}
"""The ``--quick`` subset (CI): problem → size fields given to its constructor.

EXTROSNBNE is not in it: JAX compiles its dense Jacobian (1,000 scatters) for more
than 200 s here, so it belongs to the full run."""

DEFAULT_MAX_N = 5000


@dataclass(frozen=True)
class Spec:
    """One problem at one size.

    Attributes:
        name: The CUTEst name (``ARWHEAD``).
        params: Constructor overrides as ``"n=1000,m=100"`` (``""``: default size).
        category: ``unconstrained``, ``bounded``, ``constrained`` or ``equations``.
        n: Number of variables.
        m: Number of constraints (0 for unconstrained and bounded problems).
        matrices: The matrices measured (see :data:`MATRICES`).
    """

    name: str
    params: str
    category: str
    n: int
    m: int
    matrices: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """Plain fields (for pickling across processes and the CSV)."""
        return asdict(self)


def parse_params(params: str) -> dict[str, int]:
    """``"n=1000,m=100"`` → ``{"n": 1000, "m": 100}``."""
    if not params:
        return {}
    pairs = (item.split("=", 1) for item in params.split(","))
    return {key: int(value) for key, value in pairs}


def format_params(overrides: dict[str, int]) -> str:
    """``{"n": 1000}`` → ``"n=1000"``."""
    return ",".join(f"{key}={value}" for key, value in overrides.items())


def setup() -> None:
    """Per worker process: float64 everywhere, then import sif2jax (slow: ~45 s).

    x64 is switched on before sif2jax is imported so that its module-level constants
    are float64 too; both harnesses do the same.
    """
    import warnings

    import jax

    jax.config.update("jax_enable_x64", True)
    warnings.filterwarnings("ignore")
    import sif2jax  # noqa: F401


_ALONE: dict[str, tuple[str, Any]] = {}
"""Problems loaded by :func:`load_alone` (then :func:`_catalogue` is just these)."""


def load_alone(names: Sequence[str]) -> None:
    """Load these problems without importing the whole of sif2jax.

    ``import sif2jax`` imports and instantiates every problem (a minute or two); a
    fresh process timing one problem's first call (:mod:`.fresh`) imports only the
    modules defining it: the packages above them are registered without running
    their ``__init__``. The category comes from the problem's base class (where
    sif2jax lists a problem in two tuples, :func:`_catalogue` would take the first).

    Raises:
        KeyError: For a name no sif2jax module defines.
    """
    import importlib
    import importlib.util
    import re
    import sys
    import types
    from pathlib import Path

    package = sys.modules.get("sif2jax")  # the real one, or ours (no __spec__)
    if package is None:
        spec = importlib.util.find_spec("sif2jax")
        assert spec is not None
        assert spec.submodule_search_locations is not None
        root = Path(spec.submodule_search_locations[0])
    else:
        root = Path(next(iter(package.__path__)))

    def register(parts: tuple[str, ...]) -> None:
        """The packages above ``parts`` as empty modules (their ``__init__`` unrun)."""
        for i in range(1, len(parts)):
            package = ".".join(parts[:i])
            if package not in sys.modules:
                module = types.ModuleType(package)
                module.__path__ = [str(root.parent.joinpath(*parts[:i]))]
                sys.modules[package] = module

    register(("sif2jax", "_problem"))
    base = importlib.import_module("sif2jax._problem")
    kinds = [
        ("unconstrained", base.AbstractUnconstrainedMinimisation),
        ("bounded", base.AbstractBoundedMinimisation),
        ("constrained", base.AbstractConstrainedMinimisation),
        ("equations", base.AbstractNonlinearEquations),
    ]
    for name in names:
        mentions = re.compile(rf'class {re.escape(name)}\(|"{re.escape(name)}"')
        found = None
        for path in sorted((root / "cutest").rglob("*.py")):
            if path.name == "__init__.py" or not mentions.search(path.read_text()):
                continue
            parts = path.relative_to(root.parent).with_suffix("").parts
            register(parts)
            module = importlib.import_module(".".join(parts))
            for obj in vars(module).values():
                if (
                    isinstance(obj, type)
                    and issubclass(obj, base.AbstractProblem)
                    and obj.__module__ == module.__name__
                    and not getattr(obj, "__abstractmethods__", None)
                    and _name(obj) == name
                ):
                    found = obj()
            if found is not None:
                break
        if found is None:
            raise KeyError(f"no sif2jax module defines the problem {name}")
        category = next(c for c, kind in kinds if isinstance(found, kind))
        _ALONE[name] = (category, found)


def _name(cls: type) -> str | None:
    """The CUTEst name of a problem class; ``None`` if it cannot be made.

    Equinox checks abstract attributes only on instantiation (FREUROTH's module
    defines an abstract FREURONE that ``__abstractmethods__`` does not show).
    """
    try:
        return str(cls().name)
    except TypeError:
        return None


def _catalogue() -> dict[str, tuple[str, Any]]:
    """Name → (category, default instance), first category wins for duplicates."""
    if _ALONE:
        return _ALONE
    import sif2jax

    found: dict[str, tuple[str, Any]] = {}
    for category, attribute in CATEGORIES.items():
        for problem in getattr(sif2jax, attribute):
            found.setdefault(problem.name, (category, problem))
    return found


def instance(name: str, params: str = "") -> Any:
    """The sif2jax problem ``name``, rebuilt with ``params`` if given."""
    _, problem = _catalogue()[name]
    overrides = parse_params(params)
    if not overrides:
        return problem
    return type(problem)(**overrides)


def discover(
    names: Sequence[str] | None = None,
    max_n: int | None = DEFAULT_MAX_N,
    quick: bool = False,
) -> list[dict[str, Any]]:
    """Every selected problem with its size (runs in a worker: needs sif2jax).

    Args:
        names: Problem names to keep (default: all); unknown names are returned as
            specs with ``category = "unknown"``.
        max_n: Keep problems with at most this many variables (``None``: all).
            Not applied to ``names`` given explicitly or to the quick subset.
        quick: The :data:`QUICK` subset at its sizes.

    Returns:
        :class:`Spec` fields per problem (plain dicts, to cross process boundaries),
        in sif2jax's order (``quick``/``names``: in the order given).
    """
    catalogue = _catalogue()
    wanted: list[tuple[str, str]]
    if quick:
        wanted = [(name, format_params(sizes)) for name, sizes in QUICK.items()]
    elif names:
        wanted = [_split_name(name) for name in names]
    else:
        wanted = [(name, "") for name in catalogue]
    specs = []
    for name, params in wanted:
        if name not in catalogue:
            specs.append(Spec(name, params, "unknown", 0, 0).as_dict())
            continue
        category = catalogue[name][0]
        problem = instance(name, params)
        n, m = sizes(problem, category)
        if max_n is not None and not (quick or names) and n > max_n:
            continue
        specs.append(Spec(name, params, category, n, m, MATRICES[category]).as_dict())
    return specs


def _split_name(text: str) -> tuple[str, str]:
    """``"ARGLINA[n=50,m=100]"`` → ``("ARGLINA", "n=50,m=100")``."""
    if text.endswith("]") and "[" in text:
        name, params = text[:-1].split("[", 1)
        return name, params
    return text, ""


def sizes(problem: Any, category: str) -> tuple[int, int]:
    """Number of variables and of constraints (from shapes only)."""
    import jax

    x0 = flat_x0(problem)
    if MATRICES[category] == ("hessian",):
        return int(x0.size), 0
    _, unravel = _ravel(problem.y0)
    shape = jax.eval_shape(lambda x: constraints(problem, unravel)(x), x0).shape
    return int(x0.size), int(np.prod(shape))


def _ravel(tree: Any) -> tuple[Any, Callable[[Any], Any]]:
    import jax.flatten_util

    flat, unravel = jax.flatten_util.ravel_pytree(tree)
    return flat, unravel


def flat_x0(problem: Any) -> np.ndarray:
    """The problem's starting point as a flat float64 NumPy array."""
    flat, _ = _ravel(problem.y0)
    return np.asarray(flat, dtype=np.float64)


def constraints(problem: Any, unravel: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``c(x)``: equality then inequality constraints, flattened into one vector."""
    import jax
    import jax.numpy as jnp

    def c(x: Any) -> Any:
        equalities, inequalities = problem.constraint(unravel(x))
        leaves = jax.tree_util.tree_leaves((equalities, inequalities))
        return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)) for leaf in leaves])

    return c


@dataclass
class Matrix:
    """One matrix of one problem, ready to differentiate.

    Attributes:
        spec: The problem.
        matrix: ``hessian``, ``jacobian`` or ``lagrangian``.
        func: ``func(x, *args)`` in ``jax.numpy``, scalar for Hessians.
        points: ``[(x, args), ...]``: x float64 of shape ``(n,)``; args ``()`` or
            ``(y,)`` (multipliers, shape ``(m,)``) for the Lagrangian.
        rows: Rows of the matrix (``m`` for the Jacobian, ``n`` otherwise).
        scales: The scale each point was drawn with (``0.1``, ``0.01``, ..., ``0``).
    """

    spec: Spec
    matrix: str
    func: Callable[..., Any]
    points: list[tuple[np.ndarray, tuple[np.ndarray, ...]]]
    rows: int
    scales: list[float]

    @property
    def derivative(self) -> str:
        """``hessian`` or ``jacobian``."""
        return DERIVATIVE[self.matrix]

    def points_digest(self) -> str:
        """A short hash of the points (to check that two harnesses used the same)."""
        crc = 0
        for x, args in self.points:
            for array in (x, *args):
                crc = zlib.crc32(np.ascontiguousarray(array).tobytes(), crc)
        return f"{crc:08x}"


def build(
    spec: dict[str, Any] | Spec,
    matrix: str,
    n_points: int = 3,
    scale: float = 0.1,
    seed: int = 0,
) -> Matrix:
    """The function and points of one matrix of one problem.

    Args:
        spec: The problem (a :class:`Spec` or its dict).
        matrix: ``hessian``, ``jacobian`` or ``lagrangian``.
        n_points: Number of random points.
        scale: Standard deviation of the perturbation of ``x0``.
        seed: The run's seed (combined with the problem, size and matrix).

    Returns:
        The :class:`Matrix`.
    """
    import jax
    import jax.numpy as jnp

    if isinstance(spec, dict):
        spec = Spec(**{**spec, "matrices": tuple(spec["matrices"])})
    problem = instance(spec.name, spec.params)
    x0 = flat_x0(problem)
    _, unravel = _ravel(problem.y0)
    problem_args = problem.args

    def objective(x: Any) -> Any:
        value = problem.objective(unravel(x), problem_args)
        value = jnp.asarray(value)
        return jnp.reshape(value, ()) if value.size == 1 else value

    func: Callable[..., Any]
    if matrix == "hessian":
        func = objective
        rows = spec.n
    elif matrix == "jacobian":
        func = constraints(problem, unravel)
        rows = spec.m
    elif matrix == "lagrangian":
        c = constraints(problem, unravel)

        def lagrangian(x: Any, y: Any) -> Any:
            return objective(x) + jnp.dot(y, c(x))

        func = lagrangian
        rows = spec.n
    else:
        msg = f"unknown matrix {matrix!r}: expected one of {sorted(DERIVATIVE)}"
        raise ValueError(msg)

    key = zlib.crc32(f"{spec.name}|{spec.params}|{matrix}".encode())
    rng = np.random.default_rng([seed, key])

    def check(x: Any, *args: Any) -> Any:
        # The value only, op by op: for a problem unrolled into a Python loop
        # (EXTROSNBNE: 1,000 scatters) compiling takes a minute and the eager
        # gradient 8 GB; the eager value takes seconds.
        with jax.disable_jit():
            return func(x, *args)

    points: list[tuple[np.ndarray, tuple[np.ndarray, ...]]] = []
    used: list[float] = []
    for _ in range(n_points):
        noise = rng.standard_normal(x0.shape)
        args: tuple[np.ndarray, ...] = ()
        if matrix == "lagrangian":
            args = (rng.standard_normal(spec.m),)
        for s in _scales(scale):
            x = x0 + s * noise
            outputs = jax.tree_util.tree_leaves(check(x, *args))
            if all(bool(np.all(np.isfinite(np.asarray(o)))) for o in outputs):
                break
        points.append((x, args))
        used.append(s)
    return Matrix(spec, matrix, func, points, rows, used)


def _scales(scale: float) -> list[float]:
    """``scale``, then ten, a hundred and a thousand times smaller, then 0."""
    return [scale * 10.0**-k for k in range(4)] + [0.0]


def discover_task(
    report: Callable[[Any], None], **options: Any
) -> list[dict[str, Any]]:
    """:func:`discover` as a pool task."""
    return discover(**options)
