"""Import time: ``import numpy`` and ``import diffops`` in fresh interpreters."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import diffops

from .config import Config
from .records import Record, quartiles

FRAMEWORK_MODULES = frozenset(
    {"jax", "jaxlib", "torch", "autograd", "symnum", "sympy", "matplotlib", "rich"}
)
"""Top-level modules that ``import diffops`` must not load."""


def parse_importtime(stderr: str) -> dict[str, float]:
    """``self`` import time (µs) of each module in ``-X importtime`` output."""
    times: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) == 3:
            times[parts[2].strip()] = times.get(parts[2].strip(), 0.0) + float(parts[0])
    return times


def _import_once(stmt: str, env: dict[str, str]) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", stmt],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        msg = f"`{stmt}` failed in a subprocess: {proc.stderr[-500:]}"
        raise RuntimeError(msg)
    return parse_importtime(proc.stderr), wall * 1e6


def import_times(cfg: Config) -> list[Record]:
    """``import numpy`` and ``import diffops`` in fresh interpreters.

    "Beyond numpy" sums, within each ``import diffops`` run, the self times of the
    modules that ``import numpy`` does not load, so both sides of the difference come
    from the same process (the difference of two totals is noisier than the result).
    The subprocesses import the same diffops as this process.

    Args:
        cfg: The run's settings (``import_reps``).

    Returns:
        Records for ``import numpy``, ``import diffops`` and the difference; the last
        is marked wrong if ``import diffops`` loaded a framework.
    """
    src = str(Path(diffops.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    samples: dict[str, list[float]] = {"numpy": [], "diffops": [], "extra": []}
    walls: dict[str, list[float]] = {"numpy": [], "diffops": []}
    numpy_modules: set[str] = set()
    extra_times: dict[str, list[float]] = {}
    for rep in range(cfg.import_reps + 1):  # rep 0 warms the file cache
        numpy_times, numpy_wall = _import_once("import numpy", env)
        diffops_times, diffops_wall = _import_once("import diffops", env)
        numpy_modules |= set(numpy_times)
        extra = {m: t for m, t in diffops_times.items() if m not in numpy_modules}
        if rep:
            for module, t in extra.items():
                extra_times.setdefault(module, []).append(t)
            samples["numpy"].append(sum(numpy_times.values()))
            samples["diffops"].append(sum(diffops_times.values()))
            samples["extra"].append(sum(extra.values()))
            walls["numpy"].append(numpy_wall)
            walls["diffops"].append(diffops_wall)
    heavy = sorted(FRAMEWORK_MODULES & {m.split(".")[0] for m in extra_times})
    ranked = sorted(
        ((statistics.median(t), m) for m, t in extra_times.items()), reverse=True
    )
    records = []
    for key, impl, kind in (
        ("numpy", "import numpy", "numpy"),
        ("diffops", "import diffops", "diffops"),
        ("extra", "import diffops beyond numpy", "diffops"),
    ):
        q1, median, q3 = quartiles(samples[key])
        if key == "extra":
            note = "modules numpy does not load (median self ms): " + ", ".join(
                f"{m} {t / 1e3:.1f}" for t, m in ranked
            )
        else:
            wall = statistics.median(walls[key]) / 1e3
            note = (
                f"python -X importtime -c '{impl}': sum of self times; whole "
                f"subprocess wall-clock {wall:.1f} ms"
            )
        rec = Record(
            "import",
            "import",
            0,
            impl,
            kind,
            kind if kind == "numpy" else "diffops",
            median_us=median,
            q1_us=q1,
            q3_us=q3,
            min_us=min(samples[key]),
            loops=1,
            repeats=len(samples[key]),
            note=note,
        )
        if heavy and key == "extra":
            rec.correct = False
            rec.error = f"import diffops imported frameworks: {heavy}"
        records.append(rec)
    return records
