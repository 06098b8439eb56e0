"""The README is where an operator looks up a setting: every LIANXI_* field of the one
settings module is named there, and the README names no setting that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from services.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
TEST_ONLY = {"LIANXI_REQUIRE_SERVICES", "LIANXI_TEST_PG", "LIANXI_KILL_CYCLES"}


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"LIANXI_{name.upper()}" for name in Settings.model_fields if f"LIANXI_{name.upper()}" not in README]
    assert not missing, f"settings the README does not document: {missing}"


def test_the_readme_names_only_settings_that_exist() -> None:
    known = {f"LIANXI_{name.upper()}" for name in Settings.model_fields} | TEST_ONLY
    named = set(re.findall(r"LIANXI_[A-Z0-9_]*[A-Z0-9]", README))
    assert not named - known, f"the README names settings that do not exist: {sorted(named - known)}"
