"""The catalogue taken from the seeds, its validation, and `init` as events."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from contracts.catalogue import CATALOGUE_DIR, CatalogueError, default_catalogue, load_catalogue
from contracts.typography import ascii_punctuation_beside_cjk
from projections.catalogue_view import duties_in_force
from services.platform import Platform

REQUIRED_UNITS = ["education", "public-security", "market-supervision", "urban-management", "fire-rescue",
                  "meteorology"]


def test_catalogue_holds_the_seed_units_duties_campaigns_and_targets() -> None:
    c = default_catalogue()
    codes = [u.code for u in c.units.units]
    for code in REQUIRED_UNITS:
        assert code in codes
    assert c.lead.code == "education"
    # Seed 003 section 三 names 20 member units besides the lead bureau.
    assert len(codes) == 21
    assert "fire-rescue.inspection" in [d.code for d in c.unit("fire-rescue").duties]
    assert [x.code for x in c.campaigns.campaigns] == [
        "fire-safety", "food-safety", "school-bus", "drowning-prevention", "anti-bullying", "surroundings"]
    for campaign in c.campaigns.campaigns:
        assert len(campaign.aspects) == 5
        assert [(p.starts, p.ends) for p in campaign.phases][1:] == [("04-01", "10-31"), ("11-01", "12-31")]
    targets = {t.code: t for t in c.targets.targets}
    assert targets["green-school-share"].value == pytest.approx(0.70)
    assert targets["water-saving-schools"].value == 4
    assert targets["garbage-sorting-demo-schools"].value == 2
    assert targets["environmental-education-coverage"].value == 1.0


SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed documents (../shared/seeds) are not beside this checkout")
def test_catalogue_wording_is_the_seeds_own() -> None:
    c = default_catalogue()
    seeds = {p.name: p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")}
    seed_003 = next(text for name, text in seeds.items() if name.startswith("003_"))
    # Unit names are the ones heading the duty paragraphs of section 三, in the seed's order: the
    # seed gives 气象局 and 人民银行 without the 旗 prefix the county's own bureaus carry (both are
    # vertically managed, not county government departments), and so does the catalogue.
    section = seed_003[seed_003.index("三、工作机制"):seed_003.index("四、")]
    headings = re.findall(r"^\s+([^\s:,。]{2,14}):", section, flags=re.M)
    assert [u.name for u in c.units.units] == headings
    assert {"气象局", "人民银行"} <= set(headings)
    for unit in c.units.units:
        for duty in unit.duties:
            source = next((t for n, t in seeds.items() if duty.source and duty.source.startswith(n[:3])), seed_003)
            assert duty.text_verbatim in source, duty.code
    for target in c.targets.targets:
        assert target.text_verbatim in seeds[target.source.split()[0]] if target.source else True, target.code


TRADITIONAL_ONLY = set("從業實現嚴員證進車駕駛審責險師檔載絕運輛學爭這個們")


def _displayed_texts() -> list[tuple[str, str]]:
    c = default_catalogue()
    return ([(d.code, d.text) for u in c.units.units for d in u.duties]
            + [(f"{t.code}.{a.code}", a.text) for t in c.campaigns.campaigns for a in t.aspects]
            + [(t.code, t.text) for t in c.targets.targets])


def test_displayed_seed_texts_are_simplified_without_glosses_in_full_width_punctuation() -> None:
    import opencc

    to_simplified = opencc.OpenCC("t2s")
    for code, text in _displayed_texts():
        assert to_simplified.convert(text) == text, code  # nothing OpenCC would still simplify
        assert not TRADITIONAL_ONLY & set(text), code
        assert not re.search(r"\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+\)", text), code  # no pinyin gloss
        assert ascii_punctuation_beside_cjk(text) == [], code
    duties = {d.code: d for u in default_catalogue().units.units for d in u.duties}
    glossed = [d for d in duties.values() if "(yè)" in d.text_verbatim]
    assert glossed and all("从业人员" in d.text and "從" not in d.text for d in glossed)
    assert sum(1 for d in duties.values() if d.text != d.text_verbatim and re.search("[嚴實車]", d.text_verbatim)) == 3


def test_the_yaml_gives_the_seed_text_only(tmp_path: Path) -> None:
    broken = _broken_copy(tmp_path, "        applies_to: all", "        text: 自拟\n        applies_to: all")
    with pytest.raises(CatalogueError, match="derived from text_verbatim"):
        load_catalogue(broken)


def _broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    target = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE_DIR, target)
    units = target / "units.yaml"
    text = units.read_text(encoding="utf-8")
    assert old in text
    units.write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


def test_a_malformed_field_is_named_with_its_file(tmp_path: Path) -> None:
    broken = _broken_copy(tmp_path, "        applies_to: all", "        applies_to: everywhere")
    with pytest.raises(CatalogueError) as e:
        load_catalogue(broken)
    message = str(e.value)
    assert "units.yaml" in message and "applies_to" in message and "units[0].duties[0]" in message
    assert "\n" not in message


def test_invalid_yaml_is_reported_with_a_line(tmp_path: Path) -> None:
    broken = _broken_copy(tmp_path, "\nversion: 1", "\nversion: [1")
    with pytest.raises(CatalogueError, match=r"units.yaml: line \d+"):
        load_catalogue(broken)


def test_init_twice_changes_nothing_and_a_revision_is_an_event(platform: Platform) -> None:
    # The fixture registered the catalogue; doing it again records nothing.
    head = platform.app.recorder.max_notification_id()
    result = platform.app.register_catalogue(default_catalogue(), now=datetime(2025, 1, 1, tzinfo=UTC))
    assert (result.registered, result.revised, result.unchanged) == (0, 0, 21)
    assert platform.app.recorder.max_notification_id() == head

    # Drop one fire-rescue duty, effective 2025-03-01.
    catalogue = default_catalogue()
    fire = catalogue.unit("fire-rescue")
    trimmed = fire.model_copy(update={"duties": fire.duties[:1]})
    units = tuple(trimmed if u.code == "fire-rescue" else u for u in catalogue.units.units)
    revised = catalogue.model_copy(update={"units": catalogue.units.model_copy(update={"units": units})})
    result = platform.app.register_catalogue(revised, now=datetime(2025, 3, 2, tzinfo=UTC),
                                             effective_on=date(2025, 3, 1), reason="职责调整")
    assert result.revised == 1
    platform.runner.catch_up()
    with platform.read_engine.connect() as conn:
        before = duties_in_force(conn, "fire-rescue", date(2025, 2, 28))
        after = duties_in_force(conn, "fire-rescue", date(2025, 3, 1))
        # As known before the revision was recorded, March still had the old list.
        known_earlier = duties_in_force(conn, "fire-rescue", date(2025, 3, 1), known_by="2025-03-01T00:00:00.000000Z")
    assert len(before) == len(fire.duties) and len(after) == 1
    assert len(known_earlier) == len(fire.duties)


def test_init_on_a_store_holding_the_seed_wording_revises_the_texts_once(platform: Platform) -> None:
    """A store initialised before the display texts (duties as the seed's web page had them) gets
    one AgencyDutiesRevised per unit whose texts changed, same codes; a second init records nothing."""
    from events.agencies import Agency, agency_id

    current = default_catalogue()

    def seed_worded(u: Any) -> Any:
        return u.model_copy(update={"duties": tuple(d.model_copy(update={"text": d.text_verbatim}) for d in u.duties)})
    old = current.model_copy(update={"units": current.units.model_copy(
        update={"units": tuple(seed_worded(u) for u in current.units.units)})})
    platform.app.register_catalogue(old, now=datetime(2025, 1, 1, tzinfo=UTC), effective_on=date(2025, 1, 1),
                                    reason="as before")
    changed = sum(1 for u in current.units.units if any(d.text != d.text_verbatim for d in u.duties))
    result = platform.app.register_catalogue(current, now=datetime(2025, 3, 2, tzinfo=UTC),
                                             effective_on=date(2025, 3, 1), reason="正文规范化")
    assert (result.revised, result.unchanged) == (changed, 21 - changed) and changed >= 3
    again = platform.app.register_catalogue(current, now=datetime(2025, 3, 3, tzinfo=UTC))
    assert again.revised == 0
    bus = platform.app.repository.get(agency_id("education"))
    assert isinstance(bus, Agency)
    assert [d["code"] for d in bus.current_duties] == [d.code for d in current.unit("education").duties]
    platform.runner.catch_up()
    with platform.read_engine.connect() as conn:
        after = duties_in_force(conn, "education", date(2025, 3, 1))
        before = duties_in_force(conn, "education", date(2025, 2, 28))
    assert [d["code"] for d in before] == [d["code"] for d in after]
    assert any("校車" in d["text"] for d in before) and any("校车" in d["text"] and "，" in d["text"] for d in after)
