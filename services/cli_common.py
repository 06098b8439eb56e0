"""What every `lianxi` command module shares: the one-line error, the free-text rule, the
platform or read side opened lazily (a command imports only what it uses), the progress bar."""

from __future__ import annotations

import gc
import sys
from typing import Any


class CliError(Exception):
    """A user-facing failure with a one-line message."""


def _storable(option: str, text: str) -> str:
    """Free text the CLI records obeys the API's rule (contracts/text.py)."""
    from contracts.text import find_control_character

    problem = find_control_character(text)
    if problem is not None:
        raise CliError(f"{option} 含有不可见的控制字符 U+{ord(problem.char):04X}，请删除后重试")
    return text


def _platform(**kw: Any) -> Any:
    from services.platform import Platform

    return Platform(**kw)


def _read_side() -> Any:
    """The log and read models alone: no API, accounts or evidence modules (platform.py).

    Its imports and set-up run without cyclic garbage collection, and what they leave is then
    frozen (``gc.freeze``: never walked again by the collector; a command's modules, tables
    and engine live as long as its process): collections set off by the ~70,000 objects of
    the import walked them again and again (60-95 ms of a 120-school rebuild, now 12-25)."""
    from projections.collector import collector_paused

    with collector_paused():
        from services.platform import ReadSide

        side = ReadSide()
        gc.freeze()
    return side


class _NoBar:
    """What ``_bar`` gives when stderr is not a terminal, where tqdm would draw nothing
    either (its ``disable=None``): tqdm is then not even imported (a tenth of a rebuild's
    start-up)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float | None = 1) -> None:
        return None


def _bar(total: int, desc: str) -> Any:
    if not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="ev", file=sys.stderr, dynamic_ncols=True,
                disable=None)  # None: no bar when stderr is not a terminal
