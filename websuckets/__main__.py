"""``python -m websuckets``: the same command line as ``websuckets``."""

from .cli import main

main(prog_name="websuckets")
