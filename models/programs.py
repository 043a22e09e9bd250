"""Programs (工作类别): which people a campaign concerns, named in its file.

A contact works on programs; a roster's 备注 names them in words (集群遴选, 制造精品, 全部). The
name and the words of each program come from the campaign files (``program_name:``,
``program_words:``), so a new program is a new file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache

from calendars.campaign import CampaignSpec, builtin_campaign_files, load_campaign_file


@dataclass(frozen=True)
class ProgramName:
    id: str
    name: str  # as people call it
    words: tuple[str, ...]  # any of them in a 备注 names the program


def program_of(spec: CampaignSpec) -> ProgramName:
    name = spec.program_name or spec.program
    return ProgramName(spec.program, name, spec.program_words or (name,))


def programs_of(specs: Iterable[CampaignSpec]) -> dict[str, ProgramName]:
    out: dict[str, ProgramName] = {}
    for spec in specs:
        out.setdefault(spec.program, program_of(spec))
    return out


# Words of a 备注 that mean "every program" (都负责: 全部). A program's word containing one would
# be read as all of them.
ALL_PROGRAMS_WORDS = ("全部", "均", "都", "两者", "两项", "以上")


def word_clashes(spec: CampaignSpec, others: Iterable[ProgramName]) -> list[tuple[str, str]]:
    """Why ``spec``'s program words would make a roster's 备注 mean another program: a 备注 names
    the first program one of whose words it contains (models.sheet_roster), so a word that is, or
    contains, or is contained in, another program's word puts people on the wrong program."""
    mine = program_of(spec)
    out: list[tuple[str, str]] = []
    for word in mine.words:
        every = [w for w in ALL_PROGRAMS_WORDS if w in word]
        if every:
            out.append(
                (
                    word,
                    f"「{word}」含「{every[0]}」，工作人员表「备注」中会被读作「全部」工作类别；请换一个词",
                )
            )
            continue
        for other in others:
            if other.id == mine.id:
                continue
            clash = next((w for w in other.words if w in word or word in w), None)
            if clash is not None:
                out.append(
                    (
                        word,
                        f"「{word}」与已有工作类别「{other.name}」（{other.id}）的用语「{clash}」相同或互相包含，"
                        "工作人员表「备注」中无法分辨；请只写本工作类别独有的词",
                    )
                )
                break
    return out


@cache
def builtin_specs() -> tuple[CampaignSpec, ...]:
    """The built-in campaign files, read once."""
    return tuple(load_campaign_file(p) for p in builtin_campaign_files())


@cache
def builtin_programs() -> dict[str, ProgramName]:
    return programs_of(builtin_specs())


# Programs of campaigns loaded in this process beyond the built-in ones (their names, for people).
_NOTED: dict[str, ProgramName] = {}


def note(spec: CampaignSpec) -> None:
    # A file that does not name its program (program_name:) must not rename a known one to its
    # bare id: 集群遴选 stays 集群遴选 after a test or sample file of program cluster is loaded.
    if not spec.program_name and spec.program in {**builtin_programs(), **_NOTED}:
        return
    _NOTED[spec.program] = program_of(spec)


class _Labels(Mapping[str, str]):
    """``PROGRAM_LABELS[program]``: the name of any known program, read when asked."""

    def _all(self) -> dict[str, str]:
        return {p.id: p.name for p in {**builtin_programs(), **_NOTED}.values()}

    def __getitem__(self, program: str) -> str:
        return self._all()[program]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


PROGRAM_LABELS: Mapping[str, str] = _Labels()
