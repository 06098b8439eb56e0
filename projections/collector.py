"""The cyclic garbage collector paused around work that allocates by the hundred thousand
and leaves no cycles (a catch-up batch's decoded events, a PDF render's boxes): its automatic
passes over those objects were a fifth of a rebuild and a quarter of a PDF render, and
reference counts free them all the same.

One counted pause for the whole process (the runner and the brief renderer share it): the
collector is process-wide, so two pauses on different threads, each restoring what it had
found, could leave it off for good. Here the last holder to finish resumes it, and only if it
was running before the first began."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_was_enabled = True


@contextmanager
def collector_paused() -> Iterator[None]:
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
