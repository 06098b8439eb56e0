"""Briefs rendered once per (data, format): concurrent readers share one render, a repeat is
served from memory, changed data renders afresh, a slow render answers 正在生成 (202) rather
than running into the request timeout, and a failed render is not kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.catalogue import default_catalogue
from projections.meetings import list_meetings
from services.meetings.briefs import BriefCache
from services.platform import Platform
from tests.conftest import Api, make_platform
from tests.test_web_pages import Browser


class SlowRender:
    def __init__(self, seconds: float = 0.2, fail: bool = False) -> None:
        self.seconds, self.fail = seconds, fail
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, data: dict[str, Any], fmt: str) -> bytes:
        with self._lock:
            self.calls += 1
        time.sleep(self.seconds)
        if self.fail:
            raise OSError("no PDF engine here")
        return f"{fmt}:{data.get('n', 'brief')}".encode()


def test_concurrent_readers_share_one_render_and_repeats_come_from_memory() -> None:
    render = SlowRender(0.3)
    cache = BriefCache(render)
    try:
        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(lambda _: cache.get({"n": 1}, "pdf", wait_s=5), range(8)))
        assert bodies == [b"pdf:1"] * 8 and render.calls == 1
        assert cache.get({"n": 1}, "pdf", wait_s=5) == b"pdf:1" and render.calls == 1
        assert cache.get({"n": 1}, "docx", wait_s=5) == b"docx:1" and render.calls == 2  # another format
        assert cache.get({"n": 2}, "pdf", wait_s=5) == b"pdf:2" and render.calls == 3  # the data changed
    finally:
        cache.close()


def test_a_slow_render_is_answered_still_rendering_then_served() -> None:
    render = SlowRender(0.5)
    cache = BriefCache(render)
    try:
        assert cache.get({"n": 1}, "pdf", wait_s=0.05) is None
        assert cache.get({"n": 1}, "pdf", wait_s=0.05) is None and render.calls == 1  # still the one render
        assert cache.get({"n": 1}, "pdf", wait_s=5) == b"pdf:1" and render.calls == 1  # waits for it
        assert cache.get({"n": 1}, "pdf", wait_s=0.05) == b"pdf:1" and render.calls == 1
    finally:
        cache.close()


def test_a_failed_render_raises_to_its_readers_and_is_not_kept() -> None:
    render = SlowRender(0.0, fail=True)
    cache = BriefCache(render)
    try:
        for expected_calls in (1, 2):
            with pytest.raises(OSError):
                cache.get({"n": 1}, "pdf", wait_s=5)
            assert render.calls == expected_calls
    finally:
        cache.close()


def test_the_cache_keeps_a_bounded_number_of_briefs() -> None:
    render = SlowRender(0.0)
    cache = BriefCache(render, keep=2)
    try:
        for n in (1, 2, 3):
            cache.get({"n": n}, "html", wait_s=5)
        cache.get({"n": 1}, "html", wait_s=5)  # the oldest was dropped: rendered again
        assert render.calls == 4
    finally:
        cache.close()


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    from services.demo.year import run_demo

    p = make_platform(f"sqlite:///{tmp_path_factory.mktemp('briefs') / 'demo.db'}")
    now = datetime(2025, 1, 10, tzinfo=UTC)
    run_demo(p.app, default_catalogue(), schools=20, year=2024, seed=5, now=now)
    p.runner.catch_up()
    with p.read_engine.connect() as conn:
        meeting = str(list_meetings(conn, 2024)[-1]["meeting_id"])
    yield p, meeting
    p.close()


def test_the_api_and_the_page_render_a_brief_once_and_say_when_it_is_still_rendering(
        county: tuple[Platform, str], monkeypatch: pytest.MonkeyPatch) -> None:
    platform, meeting = county
    api = Api(platform)
    lead = api.as_("education", "lead")
    url = f"/api/v1/meetings/{meeting}/brief?format=html"
    first = api.client.get(url, headers=lead)
    renders = SlowRender(0.4)
    monkeypatch.setattr(platform.briefs, "_render", renders)
    second = api.client.get(url, headers=lead)
    assert first.status_code == second.status_code == 200 and first.content == second.content
    assert renders.calls == 0  # unchanged data: served from memory

    monkeypatch.setattr(platform.settings, "brief_wait_s", 0.05)
    slow = api.client.get(f"/api/v1/meetings/{meeting}/brief?format=docx", headers=lead)
    assert slow.status_code == 202 and slow.headers["retry-after"] == "3"
    assert slow.json()["status"] == "rendering"
    time.sleep(1.0)
    done = api.client.get(f"/api/v1/meetings/{meeting}/brief?format=docx", headers=lead)
    assert done.status_code == 200 and done.content == b"docx:brief" and renders.calls == 1

    # The page says so in Chinese and refreshes itself.
    browser = Browser(api, "education", "lead")
    page = browser.client.get(f"/meetings/{meeting}/brief.pdf")
    assert page.status_code == 202 and "简报正在生成" in page.text
    assert 'http-equiv="refresh" content="3"' in page.text
    time.sleep(1.0)
    pdf = browser.client.get(f"/meetings/{meeting}/brief.pdf")
    assert pdf.status_code == 200 and pdf.content == b"pdf:brief" and renders.calls == 2


def test_the_data_is_built_once_per_source_and_an_unknown_meeting_is_not_kept() -> None:
    cache = BriefCache(SlowRender(0.0))
    built: list[str] = []

    def build(tag: str) -> dict[str, Any] | None:
        built.append(tag)
        return None if tag == "unknown" else {"n": tag}

    try:
        assert cache.data_for(("m1", "2024-12-31", 100), lambda: build("a")) == {"n": "a"}
        assert cache.data_for(("m1", "2024-12-31", 100), lambda: build("b")) == {"n": "a"}  # same log head
        assert cache.data_for(("m1", "2024-12-31", 101), lambda: build("c")) == {"n": "c"}  # an event since
        assert cache.data_for(("m9", "2024-12-31", 101), lambda: build("unknown")) is None
        assert cache.data_for(("m9", "2024-12-31", 101), lambda: build("unknown")) is None
        assert built == ["a", "c", "unknown", "unknown"]
    finally:
        cache.close()


def test_a_render_that_finishes_before_its_callback_is_registered_does_not_deadlock() -> None:
    """A render that is already done when ``get`` registers its callback runs the callback in
    ``get``'s own thread; it must not wait on the cache's lock. An executor that renders inline
    makes every render finish first."""
    from concurrent.futures import Future

    class Inline:
        def submit(self, fn: Any, *args: Any) -> Future[bytes]:
            done: Future[bytes] = Future()
            try:
                done.set_result(fn(*args))
            except Exception as e:
                done.set_exception(e)
            return done

        def shutdown(self, **_: Any) -> None:
            pass

    for fails in (False, True):
        cache = BriefCache(SlowRender(0.0, fail=fails))
        cache._pool = Inline()  # type: ignore[assignment]
        outcome: list[object] = []

        def ask(cache: BriefCache = cache, outcome: list[object] = outcome) -> None:
            try:
                outcome.append(cache.get({"n": 1}, "pdf", wait_s=5))
            except OSError:
                outcome.append("raised")

        worker = threading.Thread(target=ask, daemon=True)
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "get() deadlocked on its own lock"
        assert outcome == (["raised"] if fails else [b"pdf:1"])


def test_readers_asking_while_the_data_is_built_wait_for_that_one_build() -> None:
    """Eight officials opening the same brief at once assemble its data once (each build catches
    the read models up and reads them: eight at once ran into the request timeout)."""
    cache = BriefCache(SlowRender(0.0))
    builds: list[int] = []
    gate = threading.Event()

    def build() -> dict[str, Any]:
        builds.append(1)
        gate.wait(5)
        return {"n": "shared"}

    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(cache.data_for, ("m1", "2024-12-31", 7), build) for _ in range(8)]
            time.sleep(0.3)
            gate.set()
            assert [f.result() for f in futures] == [{"n": "shared"}] * 8
        assert len(builds) == 1
    finally:
        cache.close()


def test_a_brief_rendered_in_one_process_is_served_by_another_from_the_store(tmp_path: Any) -> None:
    """Two caches on one database stand for two processes (an API worker and the scheduler):
    what one rendered the other serves without rendering; the store keeps the newest few."""
    import sqlalchemy as sa

    from services.meetings.briefs import RenderStore

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'renders.db'}")
    store = RenderStore(engine, keep=2)
    store.setup()
    one, other = SlowRender(0.0), SlowRender(0.0)
    a, b = BriefCache(one, store=store), BriefCache(other, store=store)
    try:
        assert a.prerender({"n": 1}, "pdf") is True and a.prerender({"n": 1}, "pdf") is False
        assert b.prerender({"n": 1}, "pdf") is False  # the store has it
        assert b.get({"n": 1}, "pdf", wait_s=5) == b"pdf:1" and (one.calls, other.calls) == (1, 0)
        for n in (2, 3):
            a.get({"n": n}, "pdf", wait_s=5)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM brief_renders").scalar() == 2
        assert BriefCache(other, store=store).get({"n": 1}, "pdf", wait_s=5) == b"pdf:1" and other.calls == 1
    finally:
        a.close()
        b.close()
        engine.dispose()


def test_the_briefs_opened_next_are_the_latest_held_and_the_next_meeting() -> None:
    from datetime import date

    from services.meetings.jobs import brief_candidates

    meetings = [
        {"meeting_id": "m1", "status": "held", "scheduled_for": "2025-03-20"},
        {"meeting_id": "m2", "status": "held", "scheduled_for": "2025-06-20"},
        {"meeting_id": "m3", "status": "scheduled", "scheduled_for": "2025-09-20"},
        {"meeting_id": "m4", "status": "scheduled", "scheduled_for": "2025-12-20"},
    ]
    assert brief_candidates(meetings, date(2025, 7, 1)) == ["m2", "m3"]
    assert brief_candidates(meetings, date(2025, 3, 1)) == ["m3"]  # nothing held yet
    assert brief_candidates(meetings[:2], date(2025, 7, 1)) == ["m2"]  # nothing to come
    assert brief_candidates([], date(2025, 7, 1)) == []


def test_the_prerender_job_renders_once_per_data_and_the_first_reader_gets_the_file(
        county: tuple[Platform, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from services.meetings.briefs import RenderStore
    from services.scheduler import LianxiScheduler

    platform, _ = county
    renders = SlowRender(0.0)
    with platform.write_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM brief_renders")  # what the tests above rendered
    cache = BriefCache(renders, store=RenderStore(platform.write_engine))
    monkeypatch.setattr(platform, "briefs", cache)
    now = platform.clock()
    scheduler = LianxiScheduler(platform)
    first = scheduler.run_job("brief-prerender", now)
    assert first["meetings"] >= 1 and first["rendered"] == first["meetings"] == renders.calls
    assert scheduler.run_job("brief-prerender", now)["rendered"] == 0  # unchanged data: nothing rendered

    # A fresh process (its memory empty) answers the first reader from the shared store.
    fresh = Platform(platform.settings, group_commit=False)
    try:
        monkeypatch.setattr(fresh.briefs, "_render", renders)
        monkeypatch.setattr(fresh.settings, "brief_wait_s", 0.0)  # a render would answer 202
        with platform.read_engine.connect() as conn:
            held = [m for m in list_meetings(conn) if m["status"] == "held"]
        latest = max(held, key=lambda m: m["scheduled_for"])["meeting_id"]
        api = Api(fresh)
        got = api.client.get(f"/api/v1/meetings/{latest}/brief?format=pdf", headers=api.as_("education", "lead"))
        assert got.status_code == 200 and got.content == b"pdf:brief" and renders.calls == first["rendered"]
    finally:
        fresh.close()
        cache.close()


def test_a_reader_waits_for_another_readers_data_build_only_so_long() -> None:
    """The data build counts against the same wait as the render: a reader that waited
    ``wait_s`` for another's build is told 正在生成 (StillBuilding), never left to time out."""
    from services.meetings.briefs import StillBuilding

    cache = BriefCache(SlowRender(0.0))
    started = threading.Event()

    def slow_build() -> dict[str, Any]:
        started.set()
        time.sleep(0.5)
        return {"n": 1}

    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(cache.data_for, "m1", slow_build)
            started.wait(5)
            with pytest.raises(StillBuilding):
                cache.data_for("m1", slow_build, wait_s=0.05)
            assert first.result() == {"n": 1}
        assert cache.data_for("m1", slow_build, wait_s=0.05) == {"n": 1}  # built: no wait
    finally:
        cache.close()
