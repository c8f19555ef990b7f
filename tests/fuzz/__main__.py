"""A long fuzz campaign that keeps going after a disagreement (``make fuzz``).

    PYTHONPATH=tests python -m fuzz --examples 2000 [--groups core,data] [--seed 0]

Hypothesis draws functions as in ``tests/test_fuzz.py``. At a disagreement not seen
before, Hypothesis shrinks the function (rerunning only that operator, those backends
and that kind of check), the minimal case and its repro are recorded, and the search
restarts with a new seed until ``--examples`` functions per group have run. A
disagreement counts as seen if an earlier one had the same kind and backends and its
minimal function used a subset of this function's features. The summary at the end
gives the functions run, the comparisons per kind, and every distinct disagreement
with a standalone repro (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

import diffops
from fuzz.grammar import GROUPS, function_specs
from fuzz.repro import report, snippet
from fuzz.run import Case, Disagreement, Focus, Tally, make_case, run_case

MAX_RESTARTS = 50


def release_caches() -> None:
    """Drop JAX's compiled programs of earlier functions (each function is new)."""
    if "jax" in sys.modules:
        sys.modules["jax"].clear_caches()
    gc.collect()


@dataclass(frozen=True)
class Signature:
    """What makes two disagreements the same for the campaign."""

    kind: str
    backends: tuple[str, ...]
    error: str  # the exception type, for errors
    features: frozenset[str]

    @classmethod
    def of(cls, finding: Disagreement, features: frozenset[str]) -> Signature:
        error = (
            finding.detail.split(":")[0] if finding.kind in ("error", "sparse") else ""
        )
        # jax_nojit runs jax's code op by op: one family for telling findings apart
        families = {"jax" if b == "jax_nojit" else b for b in finding.backends}
        # The exception type is not part of it: one defect raises several.
        del error
        return cls(finding.kind, tuple(sorted(families)), "", features)

    def covers(self, other: Signature) -> bool:
        return (self.kind, self.backends, self.error) == (
            other.kind,
            other.backends,
            other.error,
        ) and self.features <= other.features


@dataclass
class Found:
    """A distinct disagreement: its minimal case and findings."""

    group: str
    signature: Signature
    case: Case
    findings: list[Disagreement]


@dataclass
class Campaign:
    backends: tuple[str, ...]
    tally: Tally = field(default_factory=Tally)
    found: list[Found] = field(default_factory=list)
    repeats: int = 0  # functions whose disagreements were all seen before
    out: Path | None = None  # folder for repro files
    start: float = field(default_factory=time.time)
    excluded: frozenset[str] = frozenset()

    def known(self, signature: Signature) -> bool:
        return any(f.signature.covers(signature) for f in self.found)

    def run_group(self, group: str, n_examples: int, seed: int, log) -> None:
        """Search until ``n_examples`` functions of ``group`` have run."""
        done = 0
        for restart in range(MAX_RESTARTS):
            if done >= n_examples:
                return
            done += self.search(group, n_examples - done, seed * 1000 + restart, log)
        log(f"  stopping {group}: {MAX_RESTARTS} restarts")

    def search(self, group: str, n_examples: int, seed: int, log) -> int:
        """One Hypothesis search; it stops at the first new disagreement, shrunk.

        Returns:
            The number of functions it ran (shrinking not counted).
        """
        state: dict[str, object] = {"done": 0}
        focus: list[Focus] = []

        @hypothesis_seed(seed)
        @settings(
            max_examples=n_examples,
            deadline=None,
            database=None,
            derandomize=False,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            spec=function_specs(GROUPS[group] - self.excluded),
            case_seed=st.integers(0, 2**32 - 1),
        )
        def search(spec, case_seed):
            case = make_case(spec, case_seed)
            if case is None:
                if not focus:
                    self.tally.rejected += 1
                assume(False)
            found, tally = run_case(case, self.backends, focus[0] if focus else None)
            if not focus:  # count the search, not the shrinking
                state["done"] += 1
                self.tally.add(tally)
                if self.tally.functions % 50 == 0:
                    release_caches()
                if self.tally.functions % 10 == 0 and self.out is not None:
                    text = summary(self, time.time() - self.start)
                    (self.out / "summary.txt").write_text(text + "\n")
                if self.tally.functions % 25 == 0:
                    log(
                        f"  {self.tally.functions} functions, "
                        f"{len(self.found)} distinct disagreements"
                    )
            features = spec.used()
            new = [f for f in found if not self.known(Signature.of(f, features))]
            if found and not new and not focus:
                self.repeats += 1
            if focus:
                new = [f for f in new if Focus.on(f) == focus[0]]
            if new:
                if not focus:
                    focus.append(Focus.on(new[0]))
                    log(f"  new disagreement, shrinking: {new[0].summary()}")
                state["case"], state["findings"] = case, new
                raise AssertionError("disagreement")

        try:
            search()
        except Exception:  # AssertionError, or Hypothesis's FlakyFailure group
            if "case" not in state:
                raise
            case, findings = state["case"], state["findings"]
            signature = Signature.of(findings[0], case.spec.used())
            self.found.append(Found(group, signature, case, findings))
            if self.out is not None:  # written at once: a long campaign may be stopped
                path = self.out / f"repro_{len(self.found)}.py"
                path.write_text(snippet(case, findings[0]))
            features = ", ".join(sorted(signature.features)) or "x only"
            log(f"  minimal: {findings[0].summary()} (uses {features})")
        return int(state["done"])


def summary(campaign: Campaign, elapsed: float) -> str:
    tally = campaign.tally
    c = tally.comparisons
    lines = [
        f"diffops fuzz campaign: {tally.functions} functions in {elapsed / 60:.1f} min "
        f"({tally.rejected} draws rejected: no smooth point), "
        f"backends {', '.join(campaign.backends)}",
        f"comparisons: cross-backend {c['cross']:,}, finite-difference {c['fd']:,}, "
        f"sparse-vs-dense {c['sparse']:,}, harness self-checks {c['harness']:,}",
        "functions per backend: "
        + ", ".join(f"{b} {n}" for b, n in sorted(tally.backend_functions.items())),
        "features used: "
        + ", ".join(f"{k} {n}" for k, n in tally.features.most_common()),
        f"distinct disagreements: {len(campaign.found)} "
        f"(plus {campaign.repeats} functions with only already-seen ones)",
    ]
    for number, found in enumerate(campaign.found, 1):
        features = ", ".join(sorted(found.signature.features)) or "x only"
        lines += [
            "",
            f"[{number}] group {found.group}: {found.findings[0].summary()}",
            f"    minimal function uses: {features}",
            report(found.case, found.findings, max_repros=1),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fuzz", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=int(os.environ.get("DIFFOPS_FUZZ_EXAMPLES", 2000)),
        help="functions in all, shared equally by the groups",
    )
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument(
        "--backends", default=os.environ.get("DIFFOPS_TEST_BACKENDS", "")
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--exclude",
        default=os.environ.get("DIFFOPS_FUZZ_EXCLUDE", ""),
        help="comma-separated grammar features to leave out",
    )
    parser.add_argument("--out", default="fuzz-results", help="folder for repro files")
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()] or list(
        diffops.registered_backends()
    )
    backends = tuple(b for b in names if diffops.get_backend(b).available)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    excluded = frozenset(f.strip() for f in args.exclude.split(",") if f.strip())
    campaign = Campaign(backends, out=out, excluded=excluded)
    start = time.time()

    def log(message: str) -> None:
        print(f"[{(time.time() - start) / 60:5.1f} min] {message}", flush=True)

    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    try:
        for number, group in enumerate(groups):
            share = args.examples // len(groups) + (
                number < args.examples % len(groups)
            )
            log(f"group {group}: {share} functions")
            campaign.run_group(group, share, args.seed, log)
    except KeyboardInterrupt:  # stopped early: summarise what ran
        log("interrupted")
    text = summary(campaign, time.time() - start)
    print("\n" + text)
    (out / "summary.txt").write_text(text + "\n")
    return 1 if campaign.found else 0


if __name__ == "__main__":
    sys.exit(main())
