"""The audit trail as a page people read (issue 16): newest first with paging back, actions in
Chinese, actors by unit name and role (未登录 for requests without a valid credential), county
time, outcomes in Chinese with their status, filters kept; the API keeps its raw rows."""

from __future__ import annotations

import re

from fastapi.routing import iter_route_contexts

from contracts.catalogue import default_catalogue
from services.api.main import create_app
from services.documents import labels
from services.documents.timefmt import local_time
from tests.conftest import Api, register_schools
from tests.test_web_pages import Browser
from tests.test_web_readable import offences, visible

LIAISON = "fire-rescue"
NAMES = {u.code: u.name for u in default_catalogue().units.units}
FIRE = f"{NAMES[LIAISON]}（联络员）"


def test_every_route_has_a_chinese_action_name(sqlite_api: Api) -> None:
    app = create_app(sqlite_api.platform)
    missing = []
    for rc in iter_route_contexts(app.routes):
        if not rc.path or rc.path.startswith("/static"):
            continue
        missing += [f"{m} {rc.path}" for m in sorted((rc.methods or set()) - {"HEAD"})
                    if f"{m} {rc.path}" not in labels.AUDIT_ACTIONS]
    assert missing == []
    assert labels.audit_action("POST /api/v1/duty-logs") == "登记履职"
    assert labels.audit_action("GET (no route)") == "访问不存在的地址"


def _rows(html: str) -> list[str]:
    return re.findall(r"<tr>\s*<td class=\"num\">(\d+)</td>(.*?)</tr>", html, re.S)  # type: ignore[return-value]


def test_the_audit_page_reads_as_chinese_newest_first_in_county_time(sqlite_api: Api) -> None:
    api = sqlite_api
    schools = register_schools(api, 2)
    c = api.client
    assert c.get("/api/v1/events").status_code == 401  # no credential
    assert c.get("/api/v1/events", headers={"Authorization": "Bearer lx_forged"}).status_code == 401
    r = c.post("/api/v1/duty-logs", headers=api.as_(LIAISON), json={
        "duty_code": "fire-rescue.inspection", "school_ids": [schools[0]], "occurred_on": "2025-06-01",
        "summary": "消防安全检查"})
    assert r.status_code == 201, r.text
    assert c.get("/api/v1/agencies/public-security/ledger", headers=api.as_(LIAISON)).status_code == 403

    auditor = Browser(api, "education", "auditor")
    page = auditor.client.get("/audit")
    assert page.status_code == 200
    text = visible(page.text)
    assert "anonymous" not in page.text and "POST /api/v1" not in text and "GET /api/v1" not in text
    assert offences(page.text, schools) == []
    rows = _rows(page.text)
    ids = [int(i) for i, _ in rows]
    assert ids == sorted(ids, reverse=True) and len(ids) >= 5  # newest first
    cells = {name: next(body for _, body in rows if name in body)
             for name in ("登记履职", "查阅事件日志", "查看责任台账", "登录")}
    assert FIRE in cells["登记履职"] and "成功 · 201" in cells["登记履职"]
    refused = cells["查看责任台账"]
    assert "被拒绝（无权） · 403 无权操作" in refused and NAMES["public-security"] in refused
    anon = [visible(body) for _, body in rows if "查阅事件日志" in body and "401" in body]
    assert any("未登录（凭证无效）" in a for a in anon) and any(re.search(r"未登录(?!（)", a) for a in anon)
    newest = api.platform.audit.page(newest_first=True, limit=1)[0]
    assert local_time(newest["at"], seconds=True) in page.text  # county time, no zone

    # Filters: one unit's refusals; the page keeps them in its links.
    page = auditor.client.get("/audit", params={"unit": LIAISON, "outcome": "refused"})
    rows = _rows(page.text)
    assert rows and all(FIRE in b and "被拒绝（无权）" in b for _, b in rows)
    assert '<option value="refused" selected>' in page.text


def test_the_audit_page_pages_back_and_the_api_still_pages_forward(sqlite_api: Api) -> None:
    api = sqlite_api
    for _ in range(60):
        api.client.get("/api/v1/events")  # 60 refused reads (no credential)
    auditor = Browser(api, "education", "auditor")
    first = auditor.client.get("/audit", params={"outcome": "refused"})
    older = re.search(r'href="(/audit\?[^"]+)">更早的记录', first.text)
    assert older is not None and "outcome=refused" in older.group(1)
    ids_first = [int(i) for i, _ in _rows(first.text)]
    second = auditor.client.get(older.group(1).replace("&amp;", "&"))
    ids_second = [int(i) for i, _ in _rows(second.text)]
    assert len(ids_first) == 50 and ids_second and max(ids_second) < min(ids_first)
    assert "回到最新" in second.text
    # The API (the export for other tools) is unchanged: oldest first, raw actions.
    r = api.client.get("/api/v1/audit", params={"limit": 5}, headers=api.as_("education", "auditor"))
    items = r.json()["items"]
    assert [i["id"] for i in items] == sorted(i["id"] for i in items)
    assert items[0]["action"].startswith(("GET ", "POST "))


def test_rows_the_accounts_service_writes_name_who_acted() -> None:
    """Account management rows carry the acting credential in ``actor`` only (no role/unit columns):
    they read as the person and role, or the operator's command, never as 未登录."""
    from services.web.pages.events import actor_text
    people = {"acc-1": "演示·牵头单位管理员"}
    row = {"role": None, "unit": None, "token_id": None}
    assert actor_text({**row, "actor": "lead:acc-1:管理员"}, {}, people) == "演示·牵头单位管理员 · 牵头单位"
    assert actor_text({**row, "actor": "lead:tok-9:系统"}, {}, people) == "牵头单位"
    assert actor_text({**row, "actor": "cli"}, {}, people) == "运维人员（命令行）"
    assert actor_text({**row, "actor": "demo"}, {}, people) == "演示数据"
    assert actor_text({**row, "actor": "anonymous"}, {}, people) == "未登录"
    assert actor_text({**row, "actor": "token:bad"}, {}, people) == "未登录（凭证无效）"
