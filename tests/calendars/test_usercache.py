"""The user's cache (calendars/usercache.py) as the campaign files' parse uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calendars.campaign import CampaignFileError, builtin_campaign_files, load_campaign_text
from calendars.usercache import CACHE_DIR_ENV


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_campaign_text_parsed_once_is_read_back_from_the_cache(cache: Path) -> None:
    text = builtin_campaign_files()[0].read_text(encoding="utf-8")
    first = load_campaign_text(text, origin="a.yaml")
    (entry,) = (cache / "campaigns").glob("*.json")
    raw = json.loads(entry.read_text(encoding="utf-8"))
    raw["name"] = "缓存中的名称"
    entry.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    assert load_campaign_text(text, origin="a.yaml").name == "缓存中的名称"
    # Another text (one character) is another entry: parsed, validated and named as before.
    other = load_campaign_text(text.replace(first.name, first.name + "（副本）", 1), origin="b.yaml")
    assert other.name == first.name + "（副本）" and len(list((cache / "campaigns").glob("*.json"))) == 2


def test_a_broken_file_is_still_refused_with_its_line_and_nothing_is_cached(cache: Path) -> None:
    with pytest.raises(CampaignFileError, match=r"bad\.yaml: 第2行第\d+列.*YAML 格式错误"):
        load_campaign_text("id: x\n  name: [\n", origin="bad.yaml")
    assert not (cache / "campaigns").exists()


def test_an_unwritable_cache_costs_only_the_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocker))
    text = builtin_campaign_files()[1].read_text(encoding="utf-8")
    assert load_campaign_text(text, origin="c.yaml").id == load_campaign_text(text, origin="c.yaml").id
