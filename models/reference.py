"""Built-in reference data: Zhejiang's administrative divisions (province → 11 cities → 90 counties).

Pure Python, no database. The data lives in ``models/data/zhejiang.yaml``; see the comment at the
top of that file for where the 山区海岛县 flag comes from and how an operator corrects it.

Typical use::

    from models.reference import load_divisions, resolve, resolve_or_explain

    zj = load_divisions()                  # cached
    zj.by_code("330106").name              # '西湖区'
    resolve("杭州市西湖区经信局")            # Division(code='330106', ...)
    resolve_or_explain("江干区")             # (None, '“江干区”已撤销或更名…可能是：…')

``resolve`` accepts what coordinators type into spreadsheets (full names, short names, city + county,
names followed by an office such as 经信局, full-width spaces and parentheses, 6- or 12-digit codes,
a few former names such as 下城区) and returns ``None`` when the text is unknown or ambiguous;
``resolve_or_explain`` also returns a message in Chinese that says why.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

__all__ = [
    "COUNTY_KINDS",
    "DEFAULT_DATA_PATH",
    "Division",
    "Divisions",
    "Tier",
    "load_divisions",
    "resolve",
    "resolve_or_explain",
]

Tier = Literal["province", "city", "county"]

DEFAULT_DATA_PATH = Path(__file__).parent / "data" / "zhejiang.yaml"

# kind → the suffix a full name of that kind must end with
COUNTY_KINDS: dict[str, str] = {"区": "区", "县级市": "市", "县": "县", "自治县": "自治县"}
PROVINCE_KIND = "省"
CITY_KIND = "设区市"

_UNKNOWN_HINT = "应为设区市或县（市、区）名称，如“杭州市”“西湖区”"


@dataclass(frozen=True, slots=True)
class Division:
    """One administrative division.

    ``city_code`` is the code of the city the division belongs to: the parent city for a county,
    the city's own code for a city, ``None`` for the province. ``kind`` is 省 / 设区市 / 区 / 县级市 /
    县 / 自治县. ``mountain_island`` is only ever true for counties.
    """

    code: str
    name: str
    short: str
    tier: Tier
    city_code: str | None
    kind: str
    mountain_island: bool

    def __str__(self) -> str:
        return self.name


# ---------------------------------------------------------------------------------------------
# text normalisation

# Office or organisation words; everything from the first one on is dropped ("西湖区经信局" → "西湖区").
_ORG_MARKERS = (
    "经济和信息化",
    "经济与信息化",
    "经济信息化",
    "经信",
    "工业和信息化",
    "人民政府",
    "政府",
    "国资委",
    "发展和改革",
    "发改",
    "财政",
    "科技局",
    "商务局",
    "产业发展中心",
    "技创中心",
)
# Level words at the very end: "省本级" → "省", "杭州市级" → "杭州市".
_LEVEL_SUFFIXES = ("本级", "级", "直属", "直")
# Generic kind suffixes tried when the full text is not a known name: "景宁县" → "景宁".
_KIND_SUFFIXES = ("畲族自治县", "自治县", "县级市", "市", "区", "县")
_PROVINCE_PREFIXES = ("浙江省", "浙江")
_PARENS = re.compile(r"[(\[【〔{]([^)\]】〕}]*)[)\]】〕}]")
_STRAY = re.compile(r"[\s\u200b\u200c\u200d\ufeff()\[\]【】〔〕{}\"'“”‘’·•.,，。、:：;；/\\_\-—]+")
_CODE = re.compile(r"^\d{6}(?:0{3}|0{6})?$")


def _normalise(text: str) -> tuple[str, list[str]]:
    """NFKC (full-width → half-width), drop spaces and punctuation, split off parenthesised parts."""
    s = unicodedata.normalize("NFKC", text)
    inner = [_STRAY.sub("", m) for m in _PARENS.findall(s)]
    s = _PARENS.sub("", s)
    return _STRAY.sub("", s), [p for p in inner if p]


def _strip_org(s: str) -> str:
    cut = len(s)
    for marker in _ORG_MARKERS:
        i = s.find(marker)
        if 0 < i < cut:
            cut = i
    s = s[:cut]
    changed = True
    while changed:
        changed = False
        for suffix in _LEVEL_SUFFIXES:
            if len(s) > len(suffix) and s.endswith(suffix):
                s = s[: -len(suffix)]
                changed = True
    for prefix in _PROVINCE_PREFIXES:
        rest = s[len(prefix) :]
        if s.startswith(prefix) and rest and rest != "省":
            s = rest
            break
    return s


# ---------------------------------------------------------------------------------------------
# the collection


class _Outcome:
    """Internal result of one lookup: candidates, or a reason."""

    __slots__ = ("candidates", "final", "former", "reason")

    def __init__(
        self,
        candidates: list[Division],
        *,
        former: bool = False,
        reason: str | None = None,
        final: bool = False,
    ):
        self.candidates = candidates
        self.former = former
        self.reason = reason
        self.final = final  # reason is the whole message, not a detail of "未知的地区"


class Divisions:
    """The province, its cities (notice order) and counties (code order), with prebuilt indexes."""

    def __init__(
        self,
        province: Division,
        cities: list[Division],
        counties: list[Division],
        former_names: dict[str, list[str]] | None = None,
    ):
        self._province = province
        self._cities = tuple(cities)
        self._counties = tuple(sorted(counties, key=lambda d: d.code))
        self._by_code: dict[str, Division] = {d.code: d for d in (province, *cities, *counties)}
        self._counties_of: dict[str, tuple[Division, ...]] = {
            c.code: tuple(d for d in self._counties if d.city_code == c.code) for c in self._cities
        }
        # current names (full and short) → divisions
        self._names: dict[str, list[Division]] = {}
        for d in (province, *cities, *self._counties):
            for key in {d.name, d.short}:
                self._add(self._names, key, d)
        self._add(self._names, "省", province)
        self._add(self._names, "全省", province)
        # former names (full and, unless it is a current name, short) → current divisions
        self._former: dict[str, list[Division]] = {}
        for code, olds in (former_names or {}).items():
            d = self._by_code[code]
            for old in olds:
                self._add(self._former, old, d)
                stem = _strip_kind(old)
                if len(stem) >= 2 and stem not in self._names:
                    self._add(self._former, stem, d)
        # city prefixes, longest first, for "杭州市西湖区" / "杭州西湖"
        self._city_prefixes = sorted(
            ((key, c) for c in self._cities for key in {c.name, c.short}), key=lambda kc: -len(kc[0])
        )

    @staticmethod
    def _add(index: dict[str, list[Division]], key: str, d: Division) -> None:
        bucket = index.setdefault(key, [])
        if d not in bucket:
            bucket.append(d)

    # -- plain accessors ---------------------------------------------------------------------

    @property
    def province(self) -> Division:
        return self._province

    @property
    def cities(self) -> list[Division]:
        """The 11 cities in the notice's order (杭州 宁波 温州 嘉兴 湖州 绍兴 金华 衢州 舟山 台州 丽水)."""
        return list(self._cities)

    @property
    def counties(self) -> list[Division]:
        """All county-level divisions, in code order."""
        return list(self._counties)

    @property
    def mountain_island_counties(self) -> list[Division]:
        return [d for d in self._counties if d.mountain_island]

    def __iter__(self) -> Iterator[Division]:
        yield self._province
        yield from self._cities
        yield from self._counties

    def __len__(self) -> int:
        return 1 + len(self._cities) + len(self._counties)

    def by_code(self, code: str | int) -> Division | None:
        """Any tier by its 6-digit code (a 12-digit statistical code ending in zeros also works)."""
        key = str(code).strip()
        if len(key) in (9, 12) and key[6:] == "0" * (len(key) - 6):
            key = key[:6]
        return self._by_code.get(key)

    def county_from_code(self, code: str | int) -> Division | None:
        """A county by its code; ``None`` for unknown codes and for city or province codes."""
        d = self.by_code(code)
        return d if d is not None and d.tier == "county" else None

    def counties_of(self, city: str | Division) -> list[Division]:
        """The counties of a city (by code or Division), in code order. KeyError for a non-city."""
        code = city.code if isinstance(city, Division) else str(city).strip()
        try:
            return list(self._counties_of[code])
        except KeyError:
            raise KeyError(f"不是设区市代码：{code}") from None

    def city_of(self, division: str | Division) -> Division | None:
        """The city a county belongs to (a city is its own city; the province has none).

        Accepts a Division or a code; KeyError for an unknown code.
        """
        d = division if isinstance(division, Division) else self.by_code(division)
        if d is None:
            raise KeyError(f"未知的行政区划代码：{division}")
        return self._by_code[d.city_code] if d.city_code else None

    # -- resolving free text ----------------------------------------------------------------

    def resolve(self, name: str, *, city_hint: str | None = None) -> Division | None:
        """The division ``name`` means, or ``None`` if unknown or ambiguous (see resolve_or_explain)."""
        return self.resolve_or_explain(name, city_hint=city_hint)[0]

    def resolve_or_explain(
        self, name: str, city_hint: str | None = None
    ) -> tuple[Division | None, str | None]:
        """Like :meth:`resolve`, plus a message in Chinese when the answer is ``None``.

        ``city_hint`` (a city name, short name or code, e.g. the sheet's city) picks among
        same-named counties and rejects a county or city that belongs to a different city.
        """
        raw = "" if name is None else str(name).strip()
        if not raw:
            return None, "地区名称为空（" + _UNKNOWN_HINT + "）"
        hint_city: Division | None = None
        if city_hint is not None and str(city_hint).strip():
            hint_city = self._hint_city(str(city_hint))
            if hint_city is None:
                return None, f"未知的设区市：{str(city_hint).strip()}（应为“杭州市”“宁波”或代码“330100”等）"

        main, inner = _normalise(raw)
        # a parenthesised city, as in "普陀区（舟山）", acts as a hint when none was given
        if hint_city is None:
            for part in inner:
                c = self._hint_city(part, cities_only=True)
                if c is not None:
                    hint_city = c
                    break

        outcome = self._lookup(main, hint_city) if main else _Outcome([])
        if not outcome.candidates:
            for part in inner:
                alt = self._lookup(part, hint_city)
                if alt.candidates:
                    outcome = alt
                    break
        return self._conclude(raw, outcome, hint_city)

    def _hint_city(self, text: str, *, cities_only: bool = False) -> Division | None:
        s = _strip_org(_normalise(text)[0])
        if not s or s == "市":
            return None
        out = self._lookup(s, None)
        if len(out.candidates) != 1:
            return None
        d = out.candidates[0]
        if d.tier == "city":
            return d
        if d.tier == "county" and not cities_only:
            return self._by_code[d.city_code] if d.city_code else None
        return None

    def _lookup(self, s: str, hint_city: Division | None) -> _Outcome:
        if _CODE.match(s):
            d = self.by_code(s)
            return _Outcome([d] if d else [], reason=f"未知的行政区划代码：{s}", final=True)
        s = _strip_org(s)
        if not s:
            return _Outcome([])
        if s == "市":  # "市经信局", "市本级": which city?
            if hint_city is not None:
                return _Outcome([hint_city])
            return _Outcome([], reason="未指明是哪个设区市（如“杭州市本级”“杭州市经信局”）", final=True)
        found = self._direct(s)
        if found.candidates:
            return found
        # "杭州市西湖区", "杭州西湖", "温州市龙港市"
        reason = None
        for prefix, city in self._city_prefixes:
            if not s.startswith(prefix) or len(s) == len(prefix):
                continue
            rest = s[len(prefix) :]
            inner = self._direct(rest)
            in_city = [d for d in inner.candidates if d.tier == "county" and d.city_code == city.code]
            if in_city:
                return _Outcome(in_city, former=inner.former)
            if reason is None:
                reason = f"{city.name}下没有名为“{rest}”的县（市、区）"
        return _Outcome([], reason=reason)

    def _direct(self, s: str) -> _Outcome:
        if s in self._names:
            return _Outcome(list(self._names[s]))
        if s in self._former:
            return _Outcome(list(self._former[s]), former=True)
        stem = _strip_kind(s)
        if stem and stem != s:
            if stem in self._names:
                return _Outcome(list(self._names[stem]))
            if stem in self._former:
                return _Outcome(list(self._former[stem]), former=True)
        return _Outcome([])

    def _conclude(
        self, raw: str, outcome: _Outcome, hint_city: Division | None
    ) -> tuple[Division | None, str | None]:
        cands = outcome.candidates
        if not cands:
            reason = outcome.reason
            if reason and outcome.final:
                return None, f"“{raw}”{reason}" if not reason.startswith("未知") else reason
            tail = f"；{reason}" if reason else ""
            return None, f"未知的地区：{raw}（{_UNKNOWN_HINT}{tail}）"
        if hint_city is not None:
            fitting = [d for d in cands if d.tier == "province" or d.city_code == hint_city.code]
            if not fitting:
                owners = "、".join(self._label(d) for d in cands)
                return None, f"“{raw}”是{owners}，不属于{hint_city.name}"
            cands = fitting
        if len(cands) == 1:
            return cands[0], None
        options = "、".join(self._label(d) for d in cands)
        if outcome.former:
            return None, f"“{raw}”已撤销或更名，原辖区现分属：{options}；请填写现在的名称"
        return None, f"“{raw}”不唯一，可能是：{options}；请填写完整名称（如“{self._label(cands[0])}”）"

    def _label(self, d: Division) -> str:
        if d.tier == "county" and d.city_code:
            return self._by_code[d.city_code].name + d.name
        return d.name


def _strip_kind(s: str) -> str:
    for suffix in _KIND_SUFFIXES:
        if len(s) > len(suffix) and s.endswith(suffix):
            return s[: -len(suffix)]
    return s


# ---------------------------------------------------------------------------------------------
# loading


def _parse(data: dict, source: str) -> Divisions:
    def fail(msg: str) -> ValueError:
        return ValueError(f"{source}: {msg}")

    def code_of(entry: dict, what: str) -> str:
        code = str(entry.get("code", "")).strip()
        if not re.fullmatch(r"\d{6}", code):
            raise fail(f"{what} {entry.get('name')!r}: code must be 6 digits, got {code!r}")
        return code

    p = data.get("province") or {}
    province = Division(
        code=code_of(p, "province"),
        name=str(p["name"]),
        short=str(p.get("short") or p["name"]),
        tier="province",
        city_code=None,
        kind=PROVINCE_KIND,
        mountain_island=False,
    )
    cities: list[Division] = []
    for c in data.get("cities") or []:
        code = code_of(c, "city")
        if code[:2] != province.code[:2] or code[4:] != "00" or code[2:4] == "00":
            raise fail(f"city {c.get('name')!r}: code {code} is not a city code of {province.name}")
        cities.append(
            Division(code, str(c["name"]), str(c["short"]), "city", code, CITY_KIND, False),
        )
    city_codes = {c.code for c in cities}
    counties: list[Division] = []
    former: dict[str, list[str]] = {}
    for k in data.get("counties") or []:
        code = code_of(k, "county")
        name, kind, city = str(k["name"]), str(k["kind"]), str(k["city"]).strip()
        if city not in city_codes:
            raise fail(f"county {name}: unknown city {city}")
        if code[:4] != city[:4] or code[4:] == "00":
            raise fail(f"county {name}: code {code} does not belong to city {city}")
        if kind not in COUNTY_KINDS:
            raise fail(f"county {name}: kind must be one of {sorted(COUNTY_KINDS)}, got {kind!r}")
        if not name.endswith(COUNTY_KINDS[kind]) or (kind == "县" and name.endswith("自治县")):
            raise fail(f"county {name}: name does not match kind {kind}")
        short = str(k["short"])
        if not name.startswith(short):
            raise fail(f"county {name}: short name {short!r} is not a prefix of the name")
        mi = k.get("mountain_island")
        if not isinstance(mi, bool):
            raise fail(f"county {name}: mountain_island must be true or false, got {mi!r}")
        counties.append(Division(code, name, short, "county", city, kind, mi))
        if k.get("former_names"):
            former[code] = [str(x) for x in k["former_names"]]
    all_codes = [province.code] + [d.code for d in cities + counties]
    dupes = sorted({c for c in all_codes if all_codes.count(c) > 1})
    if dupes:
        raise fail(f"duplicate codes: {', '.join(dupes)}")
    names = [d.name for d in cities + counties]
    dup_names = sorted({n for n in names if names.count(n) > 1})
    if dup_names:
        raise fail(f"duplicate names: {', '.join(dup_names)}")
    return Divisions(province, cities, counties, former)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> Divisions:
    p = Path(path)
    with p.open(encoding="utf-8") as fh:
        data = (
            yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
        )  # libyaml when present
    return _parse(data, str(p))


def load_divisions(path: str | Path | None = None) -> Divisions:
    """Load (and cache) the divisions from ``path``, by default the built-in ``zhejiang.yaml``."""
    return _load_cached(str(Path(path or DEFAULT_DATA_PATH).resolve()))


def resolve(name: str, *, city_hint: str | None = None) -> Division | None:
    """:meth:`Divisions.resolve` on the built-in data."""
    return load_divisions().resolve(name, city_hint=city_hint)


def resolve_or_explain(name: str, city_hint: str | None = None) -> tuple[Division | None, str | None]:
    """:meth:`Divisions.resolve_or_explain` on the built-in data."""
    return load_divisions().resolve_or_explain(name, city_hint=city_hint)


@functools.lru_cache(maxsize=4096)
def county_named(name: str) -> tuple[Division | None, str | None]:
    """The county (县、市、区) a cell names, or why it names none: the one rule every application
    writer and the reading of a form's ``county`` field follow. Cached per spelling: a million
    rows name ninety counties."""
    division, why = resolve_or_explain(name)
    if division is None or division.tier != "county":
        return None, why or f"「{name}」不是县（市、区）"
    return division, None


def read_as(name: str, division: Division) -> str | None:
    """The division's own name when ``name`` reached it only approximately (another kind suffix,
    「吴兴县」 for 吴兴区, or a former name), so an import can say how it read the cell; None
    when ``name`` is the division's name or short name, with or without its city before it."""
    divisions = load_divisions()
    main = _strip_org(_normalise(str(name))[0])
    city = divisions.by_code(division.city_code) if division.city_code else None
    for prefix in (city.name, city.short) if city is not None else ():
        if main.startswith(prefix) and len(main) > len(prefix):
            main = main[len(prefix) :]
            break
    if main in (division.name, division.short, division.code):
        return None
    return (city.name if city is not None else "") + division.name
