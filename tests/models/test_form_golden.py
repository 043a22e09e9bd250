"""The 2026 import forms give what they gave before they became data: the same cases (columns,
attrs, titles, numbers) and the same problems, file, row, column and wording (see form_golden)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from models.db import Database
from tests.models.form_golden import GOLDEN, capture


def test_the_declared_forms_import_exactly_what_the_python_readers_did(
    seeded: Database, make_ctx: Any, tmp_path: Path
) -> None:
    got = json.loads(json.dumps(capture(seeded, make_ctx, tmp_path), ensure_ascii=False, sort_keys=True))
    if os.environ.get("SHENBAO_FORM_GOLDEN") == "write":
        GOLDEN.write_text(
            json.dumps(got, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    differ = {n: (got["results"].get(n), w) for n, w in want["results"].items() if got["results"].get(n) != w}
    assert differ == {}
    assert got["results"].keys() == want["results"].keys()
    for campaign, cases in want["cases"].items():
        assert len(got["cases"][campaign]) == len(cases), campaign
        for mine, theirs in zip(got["cases"][campaign], cases, strict=True):
            changed = {
                k: (mine.get(k), theirs.get(k)) for k in {*mine, *theirs} if mine.get(k) != theirs.get(k)
            }
            if "attrs" in changed:
                a, b = changed.pop("attrs")
                changed |= {f"attrs.{k}": (a.get(k), b.get(k)) for k in {*a, *b} if a.get(k) != b.get(k)}
            assert changed == {}, theirs["ref"]
