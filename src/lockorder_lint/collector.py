"""Keep Python's cycle collector out of the work on one file.

A file's syntax tree and what is derived from it live until the file is done and hold no garbage
cycles, but every full collection re-walks all of them. With the collector running, the time per
function therefore grew with the size of the file: on one file of 50,000 functions a fifth of the
run was spent in collections. Paused for the length of one file, the time is linear in its size;
whatever the file's work leaves behind is collected as usual once it is over.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cycle collector for the ``with`` block, if it was enabled."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
