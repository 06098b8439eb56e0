"""Child process of tests/test_crash_kill.py: appends duty records through the application
(group commit, several threads, projections following in-process) until it is killed.

    python -m tests.crash_writer URL SEED [--threads N] [--no-projections]

Prints ``READY`` once the platform is up, then ``ACK <record id>`` for every write after
``log_duty`` returned (flushed at once), so the parent knows exactly which writes were
acknowledged when it sent SIGKILL.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
from datetime import UTC, datetime

from services.kernel.principal import Principal
from services.platform import Platform
from services.settings import Settings

# (unit, duty) pairs whose duties apply to schools, so records carry school ids.
WRITERS = [
    ("fire-rescue", "fire-rescue.inspection"),
    ("public-security", "public-security.campus-protection"),
    ("market-supervision", "market-supervision.food-sampling"),
]

_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def write_forever(platform: Platform, seed: str, worker: int, schools: list[str]) -> None:
    try:
        _write_forever(platform, seed, worker, schools)
    except BaseException as e:  # the parent must see a writer that died on its own
        say(f"ERROR {type(e).__name__}: {e}")
        os._exit(3)


def _write_forever(platform: Platform, seed: str, worker: int, schools: list[str]) -> None:
    rng = random.Random(f"{seed}-{worker}")
    n = 0
    while True:
        n += 1
        agency, duty = WRITERS[rng.randrange(len(WRITERS))]
        principal = Principal(token_id=f"crash-{worker}", agency=agency, role="liaison", label="crash-writer")
        now = datetime.now(UTC)
        body = {"duty_code": duty, "n": n, "worker": worker}
        picked = rng.sample(schools, k=min(len(schools), rng.randint(0, 3)))
        appended = platform.app.log_duty(
            principal, duty_code=duty, school_ids=picked, occurred_on=now.date(),
            summary=f"kill-loop write {seed}/{worker}/{n}", findings={"count": rng.randint(0, 2), "text": ""},
            evidence=[], idempotency_key=f"kill-{seed}-{worker}-{n}", body=body, now=now,
        )
        say(f"ACK {appended.id}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("seed")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--schools", default="K001,K002,K003,K004")
    parser.add_argument("--no-projections", action="store_true")
    args = parser.parse_args()
    platform = Platform(Settings(database_url=args.url, projection_batch_size=40), group_commit=True)
    if not args.no_projections:
        platform.start_background()
    schools = args.schools.split(",")
    say("READY")
    threads = [threading.Thread(target=write_forever, args=(platform, args.seed, i, schools), daemon=True)
               for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
