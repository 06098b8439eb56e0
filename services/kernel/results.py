"""What use cases answer, shared by every application mixin."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson


def request_digest(body: dict[str, Any]) -> str:
    """Canonical hash of a request body: an Idempotency-Key replay must carry the same one."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class Appended:
    id: str
    position: int | None
    replayed: bool = False
