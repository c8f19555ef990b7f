"""Settings of one benchmark run, and where the harness lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = __package__ or "benchmarks.diffops_bench"
"""Import name of this package, for ``python -m``."""

COMMAND = f"python -m {PACKAGE}"
"""The command that runs the benchmarks (from the repository root)."""

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository that holds this harness (``benchmarks/diffops_bench/..``)."""

DEFAULT_OUT = REPO_ROOT / "bench-results"
"""Default output directory; git-ignored. README numbers live in benchmarks/results."""

HVP_DIM, HVP_QUICK_DIM = 2000, 500
"""d of the ``hvp`` case (Hessian-vector products; its targets are set at
``HVP_DIM``), and with ``--quick``."""

BATCH_SIZE, BATCH_QUICK_SIZE = 1000, 100
"""Points per call of the ``batched`` cases (their targets are set at ``BATCH_SIZE``),
and with ``--quick``."""

SPARSE_DIM, SPARSE_QUICK_DIM = 2000, 500
"""d of the ``sparse`` cases (their time targets are set at ``SPARSE_DIM``), and with
``--quick``."""

FRAMEWORK = {
    "jax": "jax",
    "jax_nojit": "jax",
    "autograd": "autograd",
    "symnum": "symnum",
    "torch": "torch",
}
"""Backend → the framework whose own calls it is compared with."""


@dataclass
class Config:
    """What to run and how long to time it (from the command line).

    Attributes:
        quick: ``--quick``: fewer and shorter batches, no d = 10⁶.
        backends: diffops backends to time (installed ones only).
        cases: Case names, in run order.
        out: Output directory.
        repeats: Batches per timing.
        min_batch_s: Shortest batch, in seconds.
        large_dims: Input dimensions of the O(d) case.
        hvp_dim: Input dimension of the ``hvp`` case (Hessian-vector products).
        first_call_reps: Repetitions of the first-call measurements (``first_call``
            and the ``sparse`` cases).
        import_reps: Repetitions of the import-time measurement.
        threads: ``--threads`` (``None``: each library's own choice).
        argv: The command-line arguments, for the report.
        notes: Skipped implementations and other remarks, collected during the run.
        batch_size: Points per call of the ``batched`` cases.
        sparse_dim: Input dimension of the ``sparse`` cases.
    """

    quick: bool
    backends: tuple[str, ...]
    cases: tuple[str, ...]
    out: Path
    repeats: int
    min_batch_s: float
    large_dims: tuple[int, ...]
    hvp_dim: int
    first_call_reps: int
    import_reps: int
    threads: int | None = None
    argv: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    batch_size: int = BATCH_SIZE
    sparse_dim: int = SPARSE_DIM
