"""A moved deadline must not be quoted with the notice's original date as its basis."""

from __future__ import annotations

from calendars.campaign import builtin_campaign_files, load_campaign_file
from calendars.timeutil import parse_deadline


def _application_stage():
    spec = next(
        s for s in map(load_campaign_file, builtin_campaign_files()) if s.id == "2026-cluster-selection"
    )
    return spec.stage("application")


def test_the_notice_wording_is_quoted_as_is_while_the_deadline_stands() -> None:
    stage = _application_stage()
    assert stage.basis(stage.deadline) == stage.deadline_text
    assert "6月25日24:00" in stage.basis(stage.deadline)


def test_a_moved_deadline_says_the_wording_was_the_original_date() -> None:
    stage = _application_stage()
    note = stage.basis(parse_deadline("2026-06-30"))
    assert note.startswith(stage.deadline_text)
    assert "原定" in note and "2026-06-30（周二）24:00" in note
