"""Cold Numba against Python for the coloring kernels: the measurement behind
``diffops.sparse.kernels.COLD_PYTHON_WORK``.

In a fresh process, importing Numba and loading one kernel from its disk cache takes
a fixed time; the same kernel run as Python costs per step. Each measurement runs in
its own process (three repeats, the median printed), on banded symmetric patterns of
several sizes: the star and acyclic kernels' work (sum of squared degrees), the Python
time, and the cold Numba time (import, load, run).

Run from the repository root: ``python -m benchmarks.kernel_cold``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

CASES = ((5000, 1), (20000, 1), (5000, 3), (2000, 5), (20000, 3), (5000, 8))
REPEATS = 3
KERNELS = ("star", "acyclic")

CHILD = """
import sys, time
import numpy as np
import scipy.sparse as sp
from diffops.sparse import coloring, greedy, kernels
n, b, compiled = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "numba"
name = sys.argv[4] + "_coloring"
offsets = [k for k in range(-b, b + 1) if k]
graph = sp.diags([np.ones(n - abs(k)) for k in offsets], offsets, format="csr")
ptr, adj = graph.indptr.astype(np.int64), graph.indices.astype(np.int64)
order = np.arange(n, dtype=np.int64)
extra = (coloring.mirror(graph),) if name.startswith("acyclic") else ()
if compiled:  # every work is large: the compiled kernel (imported, loaded, run)
    kernels.PYTHON_WORK = kernels.COLD_PYTHON_WORK = -1
else:  # the kernel as Python (on lists)
    kernels.has_numba = lambda: False
start = time.perf_counter()
getattr(greedy, name)(order, ptr, adj, *extra)
print(greedy.star_work(ptr), time.perf_counter() - start)
"""


def _run(n: int, b: int, how: str, kernel: str) -> tuple[int, float]:
    """(work, seconds) of one fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(b), how, kernel],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), float(out[1])


def main() -> None:
    """Print work, Python seconds and cold Numba seconds per pattern."""
    print(
        f"{'kernel':>8} {'n':>6} {'band':>4} {'work':>9} {'python s':>9} "
        f"{'cold numba s':>12}"
    )
    for kernel in KERNELS:
        _run(100, 1, "numba", kernel)  # fills Numba's disk cache if it is empty
        for n, b in CASES:
            python, numba = [], []
            for _ in range(REPEATS):  # interleaved
                work, seconds = _run(n, b, "python", kernel)
                python.append(seconds)
                numba.append(_run(n, b, "numba", kernel)[1])
            print(
                f"{kernel:>8} {n:>6} {b:>4} {work:>9} "
                f"{statistics.median(python):>9.3f} {statistics.median(numba):>12.3f}"
            )


if __name__ == "__main__":
    main()
