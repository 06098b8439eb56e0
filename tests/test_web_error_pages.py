"""404/403/500 as a Chinese HTML page for a browser; problem+json for API clients."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.api.main import create_app
from tests.conftest import Api
from tests.test_web_pages import Browser, h1

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _is_page(r: object) -> bool:
    return r.headers["content-type"].startswith("text/html") and "<h1>" in r.text  # type: ignore[attr-defined]


def _is_problem(r: object) -> bool:
    return r.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]


def test_an_unknown_url_in_a_browser_is_a_chinese_page_signed_in_or_not(api: Api) -> None:
    anonymous = TestClient(create_app(api.platform), follow_redirects=False)
    r = anonymous.get("/no/such/page", headers={"Accept": BROWSER_ACCEPT})
    assert r.status_code == 404 and _is_page(r), r.text[:300]
    assert h1(r) == "页面不存在" and "错误代码 404" in r.text and 'href="/signin"' in r.text
    assert "urn:lianxi:problem" not in r.text
    lead = Browser(api, "education", "lead")
    r = lead.client.get("/no/such/page", headers={"Accept": BROWSER_ACCEPT})
    assert r.status_code == 404 and h1(r) == "页面不存在" and 'href="/dashboard"' in r.text


def test_api_clients_still_get_problem_json(api: Api) -> None:
    client = TestClient(create_app(api.platform), follow_redirects=False)
    # Under /api/ even a browser's Accept gets the API's answer.
    r = client.get("/api/v1/no-such-thing", headers={"Accept": BROWSER_ACCEPT})
    assert r.status_code == 404 and _is_problem(r) and r.json()["status"] == 404
    for accept in ("application/json", "application/problem+json", "*/*"):
        r = client.get("/no/such/page", headers={"Accept": accept})
        assert r.status_code == 404 and _is_problem(r), accept
    # An API refusal stays problem+json for a client that asks for JSON.
    r = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {api.token('fire-rescue')}",
                                             "Accept": BROWSER_ACCEPT})
    assert r.status_code == 403 and _is_problem(r)


def test_a_refusal_and_a_bad_method_in_a_browser_are_pages(api: Api) -> None:
    liaison = Browser(api, "fire-rescue")
    r = liaison.client.get("/dashboard", headers={"Accept": BROWSER_ACCEPT})
    assert r.status_code == 403 and _is_page(r)
    r = liaison.client.put("/dashboard", headers={"Accept": BROWSER_ACCEPT})
    assert r.status_code == 405 and _is_page(r) and h1(r) == "不支持此操作"
    assert "GET" in r.headers.get("allow", "")
    # A page's bad query (the API's validation) is a page too, with the reader's words.
    lead = Browser(api, "education", "lead")
    r = lead.client.get("/events?before=not-a-number", headers={"Accept": BROWSER_ACCEPT})
    assert r.status_code == 422 and _is_page(r) and h1(r) == "提交内容不符合要求"


def test_a_crash_in_a_browser_is_a_chinese_page_and_json_for_a_client(api: Api) -> None:
    app = create_app(api.platform)

    @app.get("/crash-for-test")
    def crash() -> None:
        raise RuntimeError("boom: internal detail that must not reach the reader")

    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/crash-for-test", headers={"Accept": BROWSER_ACCEPT})
    assert r.status_code == 500 and _is_page(r) and h1(r) == "系统出错"
    assert "boom" not in r.text and "RuntimeError" not in r.text
    r = client.get("/crash-for-test", headers={"Accept": "application/json"})
    assert r.status_code == 500 and _is_problem(r) and "boom" not in r.text
