"""Token checks stay cheap for the event loop: a system token's fresh cache entry is answered
without the database, and an uncached check reads through the reader engine, so it never
waits for SQLite's write lock (held by the group committer while it commits)."""

from __future__ import annotations

import threading

from services.kernel.principal import Principal
from services.platform import Platform


def test_a_system_token_is_cached_after_its_first_check(sqlite_platform: Platform) -> None:
    tokens = sqlite_platform.tokens
    _, token = tokens.issue(agency="education", role="liaison", label="t",
                            known_agencies=sqlite_platform.known_agencies())
    assert tokens.cached(token) is None  # only the database can tell yet
    principal = tokens.authenticate(token)
    assert principal is not None and principal.agency == "education"
    assert tokens.cached(token) == (principal,)
    assert tokens.cached("lx_unknown") is None
    assert tokens.authenticate("lx_unknown") is None
    assert tokens.cached("lx_unknown") == (None,)  # a known-bad token is cached too


def test_an_uncached_check_does_not_wait_for_the_write_lock(sqlite_platform: Platform) -> None:
    tokens = sqlite_platform.tokens
    _, token = tokens.issue(agency="education", role="liaison", label="t",
                            known_agencies=sqlite_platform.known_agencies())
    found: list[Principal | None] = []
    with sqlite_platform.write_engine.begin():  # BEGIN IMMEDIATE: the write lock, as a commit holds it
        checker = threading.Thread(target=lambda: found.append(tokens.authenticate(token)))
        checker.start()
        checker.join(timeout=3)
        answered_while_locked = not checker.is_alive()
    checker.join()
    assert answered_while_locked
    assert found and found[0] is not None and found[0].agency == "education"
