"""The story the demo year tells: a few member units are planted as diligent, a few as
negligent, the rest in between (chosen by the seed, printed by ``lianxi demo``), so the annual
review has something true to find.

- Diligent: every duty performed, almost every applicable school covered each round, nothing
  backdated; rectifications and tasks done on time; every warning acknowledged promptly; at
  every joint meeting.
- Negligent: some duties skipped all year (盲区), few schools covered, many entries backdated;
  rectifications and tasks late or never finished; warnings acknowledged late or never; often
  absent from joint meetings.

Only units whose duties are mostly scheduled checks of schools are planted (their work can be
measured by coverage); the lead bureau is never planted. Planting draws from its own random
stream, so the rest of the year is the same as it was for the same seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from contracts.catalogue import Catalogue

Profile = Literal["diligent", "negligent", "ordinary"]
PLANTED = 3  # units of each kind


@dataclass(frozen=True)
class Profiles:
    diligent: tuple[str, ...] = ()
    negligent: tuple[str, ...] = ()

    def of(self, unit: str) -> Profile:
        if unit in self.diligent:
            return "diligent"
        if unit in self.negligent:
            return "negligent"
        return "ordinary"

    @property
    def planted(self) -> tuple[str, ...]:
        return tuple(sorted(self.diligent + self.negligent))

    def rng(self, *key: object) -> random.Random:
        """A separate random stream for a planted decision."""
        return random.Random(":".join(["lianxi-demo-profile", *map(str, key)]))


def measurable(catalogue: Catalogue) -> list[str]:
    """Units (not the lead) with at least two scheduled school duties, making up at least 60%
    of their duty list."""
    out = []
    for unit in catalogue.units.units:
        scheduled = [d for d in unit.duties if d.applies_to != "none" and d.cadence != "on-demand"]
        if not unit.lead and len(scheduled) >= 2 and len(scheduled) >= 0.6 * len(unit.duties):
            out.append(unit.code)
    return sorted(out)


def plant(catalogue: Catalogue, seed: int) -> Profiles:
    candidates = measurable(catalogue)
    if len(candidates) < 2 * PLANTED:
        return Profiles()
    picked = random.Random(f"lianxi-demo-plant:{seed}").sample(candidates, 2 * PLANTED)
    return Profiles(tuple(sorted(picked[:PLANTED])), tuple(sorted(picked[PLANTED:])))
