"""``workers_app``'s app, in a module that raises when a worker (a spawned child) imports it.

It always raises in a worker, or, with ``$FAIL_WHILE`` set, only while that file exists.
"""

import multiprocessing
import os
from pathlib import Path

from workers_app import app

failing = "FAIL_WHILE" not in os.environ or Path(os.environ["FAIL_WHILE"]).exists()
if multiprocessing.parent_process() is not None and failing:
    raise RuntimeError("this module refuses to load in a worker")

__all__ = ["app"]
