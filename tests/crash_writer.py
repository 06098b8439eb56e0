"""Child process of tests/test_crash_kill.py: appends duty records through the application
(group commit, several threads, projections following in-process) until it is killed.

    python -m tests.crash_writer URL SEED [--threads N] [--no-projections] [--http]

Prints ``READY`` once the platform is up, then ``ACK <record id>`` for every write after
``log_duty`` returned (flushed at once), so the parent knows exactly which writes were
acknowledged when it sent SIGKILL. ``--http`` writes through the API instead (in-process
ASGI: the audit middleware, the route, the group commit), ``--threads`` concurrent clients,
acknowledging a write once its 201 arrived: the parent then also checks its audit row.
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
API_SUMMARY = "kill-loop api write"  # how the parent tells writes made through the API


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


async def _post_forever(app: object, token: str, duty: str, seed: str, worker: int, schools: list[str]) -> None:
    import httpx

    rng = random.Random(f"{seed}-{worker}")
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://lianxi") as client:
        n = 0
        while True:
            n += 1
            body = {"duty_code": duty, "school_ids": rng.sample(schools, k=min(len(schools), rng.randint(0, 3))),
                    "occurred_on": datetime.now(UTC).date().isoformat(),
                    "summary": f"{API_SUMMARY} {seed}/{worker}/{n}",
                    "findings": {"count": rng.randint(0, 2), "text": "问题" if rng.random() < 0.5 else ""}}
            if not body["findings"]["text"]:  # type: ignore[index]
                body["findings"] = {"count": 0, "text": ""}
            r = await client.post("/api/v1/duty-logs", json=body, headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": f"kill-{seed}-{worker}-{n}"})
            if r.status_code != 201:
                raise RuntimeError(f"{r.status_code} {r.text[:300]}")
            say(f"ACK {r.json()['id']}")


def write_over_http(platform: Platform, seed: str, clients: int, schools: list[str]) -> None:
    import asyncio

    from services.api.main import create_app

    app = create_app(platform)
    known = platform.known_agencies()
    tokens = {agency: platform.tokens.issue(agency=agency, role="liaison", label=f"crash-{agency}",
                                            known_agencies=known)[1] for agency, _ in WRITERS}
    say("READY")

    async def run() -> None:
        await asyncio.gather(*(
            _post_forever(app, tokens[WRITERS[i % len(WRITERS)][0]], WRITERS[i % len(WRITERS)][1], seed, i, schools)
            for i in range(clients)))

    try:
        asyncio.run(run())
    except BaseException as e:
        say(f"ERROR {type(e).__name__}: {e}")
        os._exit(3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("seed")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--schools", default="K001,K002,K003,K004")
    parser.add_argument("--no-projections", action="store_true")
    parser.add_argument("--http", action="store_true")
    args = parser.parse_args()
    platform = Platform(Settings(database_url=args.url, projection_batch_size=40), group_commit=True)
    if not args.no_projections:
        platform.start_background()
    schools = args.schools.split(",")
    if args.http:
        write_over_http(platform, args.seed, args.threads, schools)
        return
    say("READY")
    threads = [threading.Thread(target=write_forever, args=(platform, args.seed, i, schools), daemon=True)
               for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
