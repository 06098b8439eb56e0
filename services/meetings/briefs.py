"""Briefs rendered once per (the data they come from, format).

Rendering a brief (above all the PDF) takes seconds while assembling its data takes a fraction
of one. The bytes are kept under a digest of the data, so a second request for an unchanged
brief is served from memory, and readers asking at the same time share one render. Renders run
in a small pool of their own, so they never hold the request path; a request that has waited
``wait_s`` is answered "still rendering" (the pages show 正在生成 and refresh) instead of
running into the request timeout.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitedTooLong
from typing import Any

import orjson

RETRY_AFTER_S = 3  # what a reader told "still rendering" waits before asking again
Render = Callable[[dict[str, Any], str], bytes]


def data_digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).hexdigest()


class BriefCache:
    def __init__(self, render: Render, *, workers: int = 2, keep: int = 64) -> None:
        self._render = render
        self._keep = keep
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="brief-render")
        self._done: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._rendering: dict[tuple[str, str], Future[bytes]] = {}
        self._lock = threading.Lock()

    def get(self, data: dict[str, Any], fmt: str, *, wait_s: float) -> bytes | None:
        """The brief's bytes, or None while its render is still running after ``wait_s``.
        A render's error is raised to every request waiting for it, and not kept."""
        key = (data_digest(data), fmt)
        with self._lock:
            hit = self._done.get(key)
            if hit is not None:
                self._done.move_to_end(key)
                return hit
            future = self._rendering.get(key)
            if future is None:
                future = self._pool.submit(self._render, data, fmt)
                self._rendering[key] = future
                future.add_done_callback(lambda f: self._finished(key, f))
        try:
            return future.result(timeout=wait_s)
        except WaitedTooLong:
            return None

    def _finished(self, key: tuple[str, str], future: Future[bytes]) -> None:
        with self._lock:
            self._rendering.pop(key, None)
            if future.cancelled() or future.exception() is not None:
                return
            self._done[key] = future.result()
            while len(self._done) > self._keep:
                self._done.popitem(last=False)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
