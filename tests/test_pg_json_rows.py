"""insert_ignore / upsert_add / execute_many write many rows on PostgreSQL as ONE statement
(a JSON array parameter) instead of a statement per row. The rows they leave must be the
ones the statement-per-row path leaves, on both stores: first of two rows with one key kept
(DO NOTHING), sums / greatest / replace as if applied one by one (DO UPDATE), NULLs, floats,
booleans, text at a VARCHAR's limit refused beyond it."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from projections import base
from projections.base import dialect_insert, execute_many, insert_ignore, upsert_add
from services.store.database import Database

meta = sa.MetaData()
items = sa.Table(
    "t_json_items", meta,
    sa.Column("key", sa.String(8), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=True),
    sa.Column("ratio", sa.Float, nullable=True),
    sa.Column("flag", sa.Boolean, nullable=True),
    sa.Column("note", sa.String(200), nullable=True),
)


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"key": f"k{i % 7}", "n": i, "ratio": i / 3 if i % 4 else None, "flag": i % 2 == 0,
             "note": None if i % 5 == 0 else f"第{i}条 \"quoted\" \\ back"} for i in range(n)]


def _table(conn: sa.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sa.select(items).order_by(items.c.key))]


@pytest.fixture
def engine(database_url: str) -> Any:
    db = Database.from_url(database_url)
    db.ensure_schema()
    eng = db.sqlalchemy_engine(writer=True)
    meta.create_all(eng)
    yield eng
    meta.drop_all(eng)
    eng.dispose()


def _statements(eng: sa.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(eng, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_insert_ignore_keeps_the_first_row_of_a_key_in_one_statement(engine: sa.Engine) -> None:
    seen = _statements(engine)
    with engine.begin() as conn:
        insert_ignore(conn, items, _rows(40))
        got = _table(conn)
    first: dict[str, dict[str, Any]] = {}
    for r in _rows(40):
        first.setdefault(r["key"], r)
    assert got == [tuple(first[k].values()) for k in sorted(first)]
    if engine.dialect.name == "postgresql":
        inserts = [s for s in seen if s.startswith("INSERT")]
        assert len(inserts) == 1 and "json_array_elements" in inserts[0]


def test_upserts_match_applying_the_rows_one_by_one(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # Unique keys take the one-statement path; the same rows one by one must give the same table.
    rows = [{"key": f"u{i}", "n": i, "ratio": 0.1 * i, "flag": bool(i % 3), "note": "x"} for i in range(12)]
    later = [{"key": f"u{i}", "n": 100, "ratio": 2.5, "flag": False, "note": f"new{i}"} for i in range(0, 12, 2)]

    def write(conn: sa.Connection) -> list[tuple[Any, ...]]:
        upsert_add(conn, items, rows, keys=("key",), add=("n",), greatest=("ratio",), replace=("note",))
        upsert_add(conn, items, later, keys=("key",), add=("n",), greatest=("ratio",), replace=("note",))
        ins = dialect_insert(conn, items)
        execute_many(conn, items, ins.on_conflict_do_update(index_elements=["key"], set_={"flag": ins.excluded.flag}),
                     [{"key": "u1", "n": 0, "ratio": None, "flag": True, "note": None},
                      {"key": "u3", "n": 0, "ratio": None, "flag": True, "note": None},
                      {"key": "u5", "n": 0, "ratio": None, "flag": True, "note": None},
                      {"key": "v9", "n": 7, "ratio": None, "flag": None, "note": None}])
        return _table(conn)

    with engine.begin() as conn:
        together = write(conn)
        conn.execute(items.delete())
        monkeypatch.setattr(base, "_PG_JSON_MIN_ROWS", 10**9)  # every write one row a statement
        one_by_one = write(conn)
    assert together == one_by_one
    assert dict((r[0], r[1]) for r in together)["u0"] == 100 and dict((r[0], r[4]) for r in together)["u2"] == "new2"


def test_duplicate_keys_in_an_upsert_fall_back_to_one_statement_per_row(engine: sa.Engine) -> None:
    rows = [{"key": "d", "n": i, "ratio": None, "flag": None, "note": None} for i in range(6)]
    with engine.begin() as conn:
        upsert_add(conn, items, rows, keys=("key",), add=("n",))  # one statement would refuse the second update
        assert conn.execute(sa.select(items.c.n)).scalar_one() == sum(range(6))


def test_text_beyond_the_column_limit_is_refused(engine: sa.Engine) -> None:
    rows = [{"key": f"k{i}", "n": i, "ratio": None, "flag": None, "note": None} for i in range(5)]
    rows[3]["key"] = "x" * 9  # VARCHAR(8)
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with pytest.raises(sa.exc.DataError), engine.begin() as conn:
        insert_ignore(conn, items, rows)
