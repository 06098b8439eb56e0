"""Who is acting. A unit's identity comes only from its credential."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["liaison", "lead", "auditor"]
ROLES: tuple[Role, ...] = ("liaison", "lead", "auditor")
# The review group (考核组/纪检): auditors belong to it, not to a member unit.
REVIEW_GROUP = "review-group"


@dataclass(frozen=True)
class Principal:
    token_id: str
    agency: str
    role: Role
    label: str

    @property
    def can_read_all(self) -> bool:
        return self.role in ("lead", "auditor")

    @property
    def can_write(self) -> bool:
        return self.role in ("liaison", "lead")

    @property
    def actor(self) -> str:
        """How the log names who acted: token id and label, never a person's ID number."""
        return f"{self.role}:{self.token_id}:{self.label}"
