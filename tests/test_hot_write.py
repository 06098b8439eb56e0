"""The hot write's shortcuts (issue 21, bench/RESULTS.md §1) change how POST /duty-logs gets
to its handler and back, never what it answers: the route is taken before the router's walk
and only for that method and path, the group committer answers event-loop writers in one
callback per batch with each writer's own result or error, and record ids still come from
``os.urandom`` one per record."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import uuid
from typing import Any

import pytest

from events.duty_log import duty_record_id, random_uuid4
from services.api.routes.duty_log import HotWrite
from services.store.group_commit import GroupCommitter
from tests.conftest import Api, register_schools

GOOD = {"duty_code": "fire-rescue.inspection", "school_ids": ["T001"], "occurred_on": "2025-06-01",
        "summary": "消防安全检查"}


def run_alone(coro: Any) -> Any:
    """``asyncio.run`` in a thread of its own: a browser module before this one in the same
    test process leaves Playwright's event loop running in the main thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _hot(api: Api) -> HotWrite:
    stack = api.client.app.router.middleware_stack  # type: ignore[attr-defined]
    assert isinstance(stack, HotWrite)
    return stack


def test_only_post_duty_logs_skips_the_router(sqlite_api: Api) -> None:
    register_schools(sqlite_api, 1)
    hot = _hot(sqlite_api)
    walked: list[str] = []
    router_app = hot.app

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        walked.append(f"{scope['method']} {scope['path']}")
        await router_app(scope, receive, send)

    hot.app = counting
    try:
        headers = {**sqlite_api.as_("fire-rescue"), "Content-Type": "application/json"}
        r = sqlite_api.client.post("/api/v1/duty-logs", content=json.dumps(GOOD), headers=headers)
        assert r.status_code == 201 and r.json()["replayed"] is False
        assert walked == []
        # Another method on the same path, and a near path, take the router's way.
        r = sqlite_api.client.put("/api/v1/duty-logs", content=json.dumps(GOOD), headers=headers)
        assert r.status_code == 405 and r.headers["content-type"].startswith("application/problem+json")
        r = sqlite_api.client.post("/api/v1/duty-logs/", content=json.dumps(GOOD), headers=headers)
        assert walked == ["PUT /api/v1/duty-logs", "POST /api/v1/duty-logs/"]
    finally:
        hot.app = router_app
    # The audit row names the route as the router would have.
    rows = sqlite_api.platform.audit.page(limit=100)
    assert any(row["action"] == "POST /api/v1/duty-logs" and row["status"] == 201 for row in rows)


def test_a_bad_body_on_the_shortcut_is_a_problem(sqlite_api: Api) -> None:
    """Exceptions from the shortcut reach the app's handlers (problem+json), as a route's do."""
    headers = {**sqlite_api.as_("fire-rescue"), "Content-Type": "application/json"}
    r = sqlite_api.client.post("/api/v1/duty-logs", content=b'{"duty_code": 1}', headers=headers)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = sqlite_api.client.post("/api/v1/duty-logs", content=json.dumps(GOOD),
                               headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_event_loop_writers_get_their_own_results_and_errors() -> None:
    def commit_batch(items: Any) -> list[str]:
        if "bad" in items:
            raise ValueError("bad item")
        return [f"ok:{item}" for item in items]

    committer: GroupCommitter[str, str] = GroupCommitter(commit_batch)

    async def main() -> list[Any]:
        names = [f"w{i}" for i in range(40)] + ["bad"]
        return await asyncio.gather(*(committer.commit_async(n) for n in names), return_exceptions=True)

    try:
        results = run_alone(main())
        assert results[:40] == [f"ok:w{i}" for i in range(40)]
        assert isinstance(results[40], ValueError)
        # The blocking path still works beside it.
        assert committer.commit("sync") == "ok:sync"
    finally:
        committer.close()


def test_a_writer_cancelled_before_its_commit_is_not_committed() -> None:
    import threading

    gate = threading.Event()
    committed: list[str] = []

    def commit_batch(items: Any) -> list[str]:
        gate.wait(5)
        committed.extend(items)
        return list(items)

    committer: GroupCommitter[str, str] = GroupCommitter(commit_batch)

    async def main() -> str:
        first = asyncio.ensure_future(committer.commit_async("first"))  # holds the committer at the gate
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(committer.commit_async("second"))
        await asyncio.sleep(0.05)
        second.cancel()
        await asyncio.sleep(0.05)
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await second
        return await first

    try:
        assert run_alone(main()) == "first"
        committer.commit("third")
        assert committed == ["first", "third"]
    finally:
        committer.close()


def test_record_ids_are_random_version_4_and_differ_in_a_forked_child() -> None:
    ids = [duty_record_id("education", None) for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in ids)
    assert duty_record_id("education", "k1") == duty_record_id("education", "k1")  # keyed: derived
    random_uuid4()  # the parent has ids pooled now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, random_uuid4().bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child = uuid.UUID(bytes=os.read(read, 16))
    parent_next = [random_uuid4() for _ in range(300)]
    assert child not in parent_next
