"""Property-based fuzzing with schemathesis, against the ASGI app, of every operation in the
OpenAPI document (so a new endpoint is fuzzed without an edit here), then statefully along
the links schemathesis infers between operations.

Pass: no response >= 500 and no response that breaks the documented contract (status code,
content type, headers, body schema), at >= 100 generated examples per operation that takes
any input. The run is derandomized (same examples every time) on a SQLite store with a small
demo county; each example acts as the lead, a liaison or an auditor.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from contracts.catalogue import default_catalogue
from services.api.main import create_app
from services.demo.year import run_demo
from services.platform import Platform
from tests.conftest import FIXED_NOW, make_platform

EXAMPLES = 100
NEGATIVE_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
ROLES = {"lead": ("education", "lead"), "liaison": ("fire-rescue", "liaison"), "auditor": ("education", "auditor"),
         "other-liaison": ("market-supervision", "liaison")}
HYPOTHESIS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


@pytest.fixture(scope="module")
def scratch_dir() -> Iterator[Path]:
    """In memory when the machine has /dev/shm: the fuzz cares about answers, not fsync."""
    shm = Path("/dev/shm")
    path = Path(tempfile.mkdtemp(prefix="lianxi-fuzz-", dir=shm if shm.is_dir() else None))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def county(scratch_dir: Path) -> Iterator[tuple[Platform, dict[str, str]]]:
    url = f"sqlite:///{scratch_dir / 'lianxi.db'}"
    # No rate limit: thousands of requests share four credentials here (test_limits covers it).
    platform = make_platform(url, rate_limit_per_minute=0)
    run_demo(platform.app, default_catalogue(), schools=6, year=FIXED_NOW.year, seed=1, now=FIXED_NOW)
    platform.runner.catch_up()
    known = platform.known_agencies()
    tokens = {role: platform.tokens.issue(agency=a, role=r, label=f"fuzz-{role}", known_agencies=known)[1]
              for role, (a, r) in ROLES.items()}
    yield platform, tokens
    platform.close()


def operations_of(schema: Any) -> list[Any]:
    """Every operation; an operation schemathesis cannot read fails the run."""
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"schemathesis cannot read an operation: {result.err()}")
        operations.append(result.ok())
    return operations


def _takes_input(operation: Any) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FailureGroup):
        return "; ".join(sorted({f.title for f in exc.exceptions})) + "\n" + str(exc)[:1500]
    return f"server raised {type(exc).__name__}: {exc}"[:1500]


def fuzz(operation: Any, key: str, tokens: dict[str, str], counts: Counter[str],
         failures: dict[str, list[str]]) -> None:
    @HYPOTHESIS
    @given(case=operation.as_strategy(), role=st.sampled_from(sorted(tokens)))
    def run(case: Any, role: str) -> None:
        counts[key] += 1
        try:
            response = case.call(headers={"Authorization": f"Bearer {tokens[role]}"})
            case.validate_response(response, checks=CHECKS)
        except Exception as e:  # collect every failure, report them together
            failures.setdefault(key, []).append(f"[{role}] {_describe(e)}")

    run()


def test_every_operation_keeps_its_contract(county: tuple[Platform, dict[str, str]]) -> None:
    platform, tokens = county
    app = create_app(platform)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    counts: Counter[str] = Counter()
    failures: dict[str, list[str]] = {}
    started = time.perf_counter()
    operations = []
    for operation in operations_of(schema):
        operations.append(operation)
        fuzz(operation, f"{operation.method.upper()} {operation.path}", tokens, counts, failures)
    elapsed = time.perf_counter() - started
    report = "\n\n".join(f"{k}: {len(v)} failing examples\n{v[0]}" for k, v in failures.items())
    assert not failures, report
    short = [f"{k} ({counts[k]})" for k in (f"{o.method.upper()} {o.path}" for o in operations if _takes_input(o))
             if counts[k] < EXAMPLES]
    assert not short, f"fewer than {EXAMPLES} examples: {short}"
    print(f"\nschemathesis: {len(operations)} operations, {sum(counts.values())} examples, {elapsed:.1f} s")


def negative(operation: Any, key: str, tokens: dict[str, str], counts: Counter[str],
             failures: dict[str, list[str]]) -> None:
    @settings(max_examples=NEGATIVE_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), role=st.sampled_from(sorted(tokens)))
    def run(case: Any, role: str) -> None:
        counts[key] += 1
        try:
            response = case.call(headers={"Authorization": f"Bearer {tokens[role]}"})
            case.validate_response(response, checks=[not_a_server_error])
        except Exception as e:  # collect every failure, report them together
            failures.setdefault(key, []).append(f"[{role}] {_describe(e)}")

    with contextlib.suppress(Unsatisfiable):  # an operation without inputs cannot be made invalid
        run()


def test_invalid_input_never_breaks_the_server(county: tuple[Platform, dict[str, str]]) -> None:
    """Negative mode: inputs that break the schema (wrong types, missing fields, bad formats)
    are refused with a 4xx, never a 5xx."""
    platform, tokens = county
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(platform))
    counts: Counter[str] = Counter()
    failures: dict[str, list[str]] = {}
    for operation in operations_of(schema):
        negative(operation, f"{operation.method.upper()} {operation.path}", tokens, counts, failures)
    assert not failures, "\n\n".join(f"{k}: {len(v)} failing examples\n{v[0]}" for k, v in failures.items())
    print(f"\nschemathesis negative mode: {sum(counts.values())} examples over {len(counts)} operations")


class SwappableApp:
    """The ASGI app schemathesis calls; each stateful scenario swaps in a fresh platform, so a
    scenario replayed by Hypothesis meets the same state (and generates the same data)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def fresh_county(url: str) -> tuple[Platform, str]:
    platform = make_platform(url, rate_limit_per_minute=0)
    platform.app.register_catalogue(default_catalogue(), now=FIXED_NOW.replace(year=2024))
    platform.runner.catch_up()
    _, token = platform.tokens.issue(agency="education", role="lead", label="fuzz-stateful",
                                     known_agencies=platform.known_agencies())
    return platform, token


def test_stateful_links(scratch_dir: Path) -> None:
    """Along every link schemathesis infers (ids one operation returns and another takes),
    as the lead, each scenario on a fresh store."""
    tmp_path = scratch_dir / "stateful"
    tmp_path.mkdir()
    template = tmp_path / "template.db"
    first, token = fresh_county(f"sqlite:///{template}")
    first.close()  # scenarios start from copies of this store: creating one is slow, copying is not
    first = make_platform(f"sqlite:///{template}", rate_limit_per_minute=0)
    target = SwappableApp(create_app(first))
    schema = schemathesis.openapi.from_asgi("/openapi.json", target)
    machine = schema.as_state_machine()
    if not machine.bundles:
        pytest.skip("no links between operations to follow")
    scenarios = iter(range(1_000_000))
    steps: Counter[str] = Counter()

    class Stateful(machine):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            copy = tmp_path / f"s{next(scenarios)}.db"
            shutil.copyfile(template, copy)
            self.platform = make_platform(f"sqlite:///{copy}", rate_limit_per_minute=0)
            self.headers = {"Authorization": f"Bearer {token}"}
            target.app = create_app(self.platform)

        def teardown(self) -> None:
            self.platform.close()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            steps[f"{case.operation.method.upper()} {case.operation.path}"] += 1
            return {"headers": self.headers}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=self.headers)

    try:
        Stateful.run(settings=settings(max_examples=40, derandomize=True, deadline=None, database=None,
                                       stateful_step_count=8, suppress_health_check=list(HealthCheck)))
    finally:
        first.close()
    print(f"\nstateful: {len(machine.bundles)} link targets, {sum(steps.values())} steps "
          f"over {len(steps)} operations")
