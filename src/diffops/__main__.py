"""``python -m diffops``: the same as the ``diffops`` command."""

from diffops.cli import run

run()
