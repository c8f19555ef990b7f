"""``python -m benchmarks.diffops_bench``: run the benchmarks (see ``cli.main``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
