"""The mypy baseline only shrinks: a file may not gain errors, whichever line they are on."""

from __future__ import annotations

from pathlib import Path

from tests import typecheck

BASELINE = [
    "models/audit.py: Argument 1 has incompatible type  [arg-type]",
    "models/audit.py: Argument 1 has incompatible type  [arg-type]",
    "flows/cli.py: Unused 'type: ignore' comment  [unused-ignore]",
]


def test_it_passes_the_same_errors_on_other_lines() -> None:
    assert typecheck.compare(list(reversed(BASELINE)), BASELINE) == ({}, {})


def test_it_fails_a_file_with_one_error_more_and_names_it() -> None:
    new = "models/audit.py: Name 'x' is not defined  [name-defined]"
    worse, better = typecheck.compare([*BASELINE, new], BASELINE)
    assert worse == {"models/audit.py": [new]} and better == {}


def test_it_counts_a_repeated_error_as_new() -> None:
    again = BASELINE[2]
    worse, _ = typecheck.compare([*BASELINE, again], BASELINE)
    assert worse == {"flows/cli.py": [again]}


def test_it_fails_a_file_the_baseline_does_not_know() -> None:
    new = "operations/runtime.py: Missing return statement  [return]"
    worse, _ = typecheck.compare([*BASELINE, new], BASELINE)
    assert worse == {"operations/runtime.py": [new]}


def test_it_asks_to_lower_the_baseline_when_a_file_has_fewer() -> None:
    worse, better = typecheck.compare(BASELINE[1:], BASELINE)
    assert worse == {} and better == {"models/audit.py": 1}


def test_it_passes_a_swap_within_a_file_that_keeps_the_count() -> None:
    swapped = [*BASELINE[:2], "flows/cli.py: Missing return statement  [return]"]
    assert typecheck.compare(swapped, BASELINE) == ({}, {})


def test_update_writes_what_the_check_reads(tmp_path: Path) -> None:
    typecheck.write_baseline(BASELINE, tmp_path / "baseline.txt")
    assert sorted(typecheck.read_baseline(tmp_path / "baseline.txt")) == sorted(BASELINE)


def test_the_recorded_baseline_parses_and_names_only_checked_packages() -> None:
    assert typecheck.BASELINE.exists()
    recorded = typecheck.read_baseline()
    roots = {error.split("/", 1)[0] for error in recorded}
    assert roots <= set(typecheck.packages()), roots
