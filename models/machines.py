"""The state machines of every case kind: declared in the campaign files, read here.

A campaign file's ``kinds:`` section gives each kind its states, actions, who may do each and
the named guards that apply (the guards themselves are code, in ``models.actions``). This
module turns those declarations into ``Machine`` objects and keeps them by campaign, so an
engine that has loaded a new campaign file knows its kinds without any code.

The engine knows actions by their role (``role:`` in the file, ``calendars.campaign.ACTION_ROLES``),
never by their ids: ``find_role``, ``of_role`` and ``action_for`` here are where it asks.

``machine_for(kind)`` answers for a kind that every campaign defining it defines the same way
(the engine's own ``recommendation`` and ``roster``, the 2026 application kinds);
``machine_for(kind, campaign_id)`` for one campaign's own definition.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, cached_property

from calendars.campaign import (
    CampaignSpec,
    KindSpec,
    TransitionSpec,
    builtin_campaign_files,
    load_campaign_file,
)


@dataclass(frozen=True)
class Transition:
    action: str
    label: str  # 中文 for people
    sources: tuple[str, ...]
    target: str | None  # None: stays in the same state (e.g. attaching a document)
    tiers: tuple[str, ...]  # who may do it; "system" = the engine itself (lapse at a deadline)
    needs_reason: bool = False
    guards: tuple[str, ...] = ()
    # Who hears of it (applicant, county, city, recommender, owner, province).
    notify: tuple[str, ...] = ()
    # What the engine does at it (ACTION_ROLES: recommend, lapse …); None: nothing of its own.
    role: str | None = None


@dataclass(frozen=True)
class Machine:
    kind: str
    label: str
    initial: str
    states: dict[str, str]
    transitions: tuple[Transition, ...]
    # States in which nothing more is expected of anyone.
    final: frozenset[str]
    # The engine undoing one of its own transitions that a source of truth proved wrong (a
    # lapse at the deadline when the platform recorded the submission before it). Not part of
    # the lifecycle: nobody is offered them, ``find`` does not see them, final stays final; the
    # engine asks for one by its role (``find_role("correct_lapse", …)``).
    corrections: tuple[Transition, ...] = ()
    prefix: str = ""
    # The file's ``uses_quota`` where it gives one; else derived (``on_list``).
    declared_on_list: frozenset[str] | None = None

    def allowed(self, state: str) -> list[Transition]:
        return [t for t in self.transitions if state in t.sources]

    def find(self, action: str, state: str) -> Transition | None:
        for t in self.transitions:
            if t.action == action and state in t.sources:
                return t
        return None

    def actions(self) -> set[str]:
        return {t.action for t in self.transitions}

    # -- what actions mean to the engine: their roles ------------------------------------------
    # Corrections are asked for by their role too (``correct_lapse``); they never share a role
    # with the lifecycle's actions (calendars.campaign checks), so one lookup serves both.

    def of_role(self, role: str) -> tuple[Transition, ...]:
        """Every line of the machine whose action has ``role``."""
        return tuple(t for t in (*self.transitions, *self.corrections) if t.role == role)

    def find_role(self, role: str, state: str) -> Transition | None:
        """The action of ``role`` open in ``state`` (at most one: calendars.campaign checks)."""
        return next((t for t in self.of_role(role) if state in t.sources), None)

    def action_for(self, role: str, state: str) -> str | None:
        """The id of the action of ``role`` to ask for in ``state``: the one open there, else the
        role's first (``act`` then refuses it and says why); None when the machine has none."""
        t = self.find_role(role, state)
        if t is not None:
            return t.action
        return next((x.action for x in self.of_role(role)), None)

    def role_of(self, action: str) -> str | None:
        return next((t.role for t in self.transitions if t.action == action), None)

    def state_label(self, state: str) -> str:
        return self.states.get(state, state)

    def notify(self, action: str) -> tuple[str, ...]:
        return next((t.notify for t in self.transitions if t.action == action and t.notify), ())

    # -- what states mean to the engine, read from the machine's own actions ------------------
    # (Each computed once per machine: a window closing asks for ``lapsed`` once per case.)
    # The engine acts on states by their role (a lapsed draft, an application waiting for its
    # recommender, one on the list), never by their names: a campaign file may call them
    # anything. Each state's role is what the actions of roles lapse, recommend, not_recommend
    # and report_none (FORMAT.md §3) say about the states they leave and enter.

    def sources_of(self, action: str) -> frozenset[str]:
        return frozenset(s for t in self.transitions if t.action == action for s in t.sources)

    def targets_of(self, action: str) -> frozenset[str]:
        return frozenset(t.target for t in self.transitions if t.action == action and t.target)

    def role_sources(self, role: str) -> frozenset[str]:
        return frozenset(s for t in self.transitions if t.role == role for s in t.sources)

    def role_targets(self, role: str) -> frozenset[str]:
        return frozenset(t.target for t in self.transitions if t.role == role and t.target)

    @cached_property
    def lapsed(self) -> frozenset[str]:
        """States a case is in after lapsing at a deadline (``lapse``'s targets)."""
        return self.role_targets("lapse")

    @cached_property
    def candidates(self) -> frozenset[str]:
        """States in which a recommender may recommend the case (``recommend``'s sources)."""
        return self.role_sources("recommend")

    @cached_property
    def declined(self) -> frozenset[str]:
        """States of a case its recommender did not recommend (``not_recommend``'s targets)."""
        return self.role_targets("not_recommend")

    @cached_property
    def reported_none(self) -> frozenset[str]:
        """States of a recommendation that went in as 无推荐 (``report_none``'s targets)."""
        return self.role_targets("report_none")

    @cached_property
    def on_list(self) -> frozenset[str]:
        """States in which the case is on its recommender's list: the file's ``uses_quota``, else
        ``recommend``'s target and every state reached from it before the case is back where a
        recommender decides (withdrawn from the list) or declined."""
        if self.declared_on_list is not None:
            return self.declared_on_list
        stop = self.candidates | self.role_sources("not_recommend") | self.declined
        found = set(self.role_targets("recommend"))
        todo = list(found)
        while todo:
            state = todo.pop()
            for t in self.allowed(state):
                if t.target and t.target not in found and t.target not in stop:
                    found.add(t.target)
                    todo.append(t.target)
        return frozenset(found)

    @cached_property
    def undecided(self) -> frozenset[str]:
        """States whose case its recommender has not decided on: ``not_recommend`` is still open
        to it and it is not on the list. Submitting the list declines them."""
        return self.role_sources("not_recommend") - self.on_list

    @cached_property
    def with_recommender(self) -> frozenset[str]:
        """States of a case that has reached its recommender (or did: decided either way)."""
        return self.candidates | self.undecided | self.on_list | self.declined

    @cached_property
    def unreviewed(self) -> frozenset[str]:
        """Recommendable states from which a review still moves the case to another recommendable
        state (submitted → county_approved): the ``reviewed`` guard refuses ``recommend`` there."""
        return frozenset(
            s
            for s in self.candidates
            if any(t.target in self.candidates - {s} for t in self.allowed(s) if t.role != "recommend")
        )


# The recommender's own decisions: seeing a case is not deciding it (models.actions).
RECOMMENDER_ROLES = frozenset({"recommend", "not_recommend", "withdraw_recommendation"})
# An application arriving (first or again): judged at its 提交时间 by the sync, late for a list.
SUBMISSION_ROLES = frozenset({"submit", "resubmit"})
# A recommendation going in, either way: what is not on it is declined.
LIST_IN_ROLES = frozenset({"submit", "resubmit", "report_none"})


# The roles a board, a guard or the cascade reads, as ``campaign validate`` tells the file's author.
ROLE_LABELS = (
    ("lapsed", "逾期关闭后"),
    ("candidates", "可推荐"),
    ("unreviewed", "未经审核不能推荐"),
    ("on_list", "在推荐名单上（占名额）"),
    ("undecided", "报送名单时自动不予推荐"),
    ("declined", "未推荐"),
)


def describe_roles(machine: Machine) -> str:
    """How the engine reads a machine's states, in one line (empty roles left out)."""
    parts = [
        f"{label} {'、'.join(s for s in machine.states if s in getattr(machine, role))}"
        for role, label in ROLE_LABELS
        if getattr(machine, role)
    ]
    return "；".join(parts)


def describe_action_roles(machine: Machine) -> str:
    """Which action has which role, in one line (``tijiao 提交申报 → submit``), in the file's order."""
    seen: dict[str, str] = {}
    for t in (*machine.transitions, *machine.corrections):
        if t.role is not None:
            seen.setdefault(t.action, f"{t.action}（{t.label}）→ {t.role}")
    return "；".join(seen.values())


def _transition(t: TransitionSpec) -> Transition:
    return Transition(t.action, t.label, t.sources, t.to, t.by, t.reason, t.guards, t.notify, t.engine_role)


def machine_of(kind: str, spec: KindSpec) -> Machine:
    return Machine(
        kind=kind,
        label=spec.label,
        initial=spec.initial,
        states=dict(spec.states),
        transitions=tuple(_transition(t) for t in spec.transitions),
        final=frozenset(spec.final),
        corrections=tuple(_transition(t) for t in spec.corrections),
        prefix=spec.prefix,
        declared_on_list=frozenset(spec.uses_quota) if spec.uses_quota is not None else None,
    )


# campaign id -> kind -> machine. Built-in files are read once, on first use; a campaign loaded
# into the database registers (and, reloaded, replaces) its own.
_BY_CAMPAIGN: dict[str, dict[str, Machine]] = {}


@cache
def _builtin_loaded() -> bool:
    for path in builtin_campaign_files():
        spec = load_campaign_file(path)
        _BY_CAMPAIGN.setdefault(spec.id, machines_of(spec))
    return True


def machines_of(spec: CampaignSpec) -> dict[str, Machine]:
    return {kind: machine_of(kind, k) for kind, k in spec.kinds.items()}


def register(spec: CampaignSpec) -> None:
    """Make ``spec``'s kinds known (a loaded or reloaded campaign)."""
    from models.programs import note

    _builtin_loaded()
    note(spec)
    if spec.kinds:
        _BY_CAMPAIGN[spec.id] = machines_of(spec)
        return
    # A file keeping the built-in machines: its per-case deadlines name their action by the
    # built-in label (the file's own kinds are labelled when the file is read).
    for stage in spec.stages:
        anchor = stage.relative.anchor if stage.relative is not None else None
        if anchor is not None and anchor.action is not None and not anchor.labelled:
            try:
                machine = machine_for(stage.subject)
            except KeyError:
                continue
            anchor.label_action(
                next((t.label for t in machine.transitions if t.action == anchor.action), None)
            )


# Where campaigns not yet parsed in this process can be found (the databases it opened), asked
# only when a kind is unknown: the built-in campaigns never pay for it.
_SOURCES: list[weakref.WeakMethod[Callable[[], None]]] = []


def add_source(method: Callable[[], None]) -> None:
    _SOURCES.append(weakref.WeakMethod(method))


def _ask_sources() -> None:
    while _SOURCES:
        method = _SOURCES.pop()()
        if method is not None:
            method()


def _definitions(kind: str) -> list[tuple[str, Machine]]:
    _builtin_loaded()
    found = [(cid, ms[kind]) for cid, ms in _BY_CAMPAIGN.items() if kind in ms]
    if not found and _SOURCES:
        _ask_sources()
        found = [(cid, ms[kind]) for cid, ms in _BY_CAMPAIGN.items() if kind in ms]
    return found


def known_kinds() -> dict[str, Machine]:
    """Every kind any known campaign defines (the first definition of each)."""
    _builtin_loaded()
    out: dict[str, Machine] = {}
    for ms in _BY_CAMPAIGN.values():
        for kind, m in ms.items():
            out.setdefault(kind, m)
    return out


def machine_for(kind: str, campaign_id: str | None = None) -> Machine:
    if campaign_id is not None:
        _builtin_loaded()
        if campaign_id not in _BY_CAMPAIGN and _SOURCES:
            _ask_sources()
        own = _BY_CAMPAIGN.get(campaign_id, {}).get(kind)
        if own is not None:
            return own
    found = _definitions(kind)
    if not found:
        known = "、".join(sorted(known_kinds()))
        raise KeyError(f"未知的案件类型：{kind}（应为 {known}）")
    return found[0][1]


def kind_labels(kinds: Iterable[str] | None = None) -> dict[str, str]:
    every = known_kinds()
    return {k: m.label for k, m in every.items() if kinds is None or k in kinds}


class _KindLabels(dict[str, str]):
    """``KIND_LABELS[kind]``: the label of any known kind, read when asked (a campaign loaded
    after import is seen too)."""

    def _fill(self) -> None:
        for kind, label in kind_labels().items():
            dict.setdefault(self, kind, label)

    def __getitem__(self, kind: str) -> str:
        if not dict.__contains__(self, kind):
            self._fill()
        return dict.__getitem__(self, kind)

    def __iter__(self):  # type: ignore[no-untyped-def]
        self._fill()
        return dict.__iter__(self)

    def __contains__(self, kind: object) -> bool:
        self._fill()
        return dict.__contains__(self, kind)

    def __len__(self) -> int:
        self._fill()
        return dict.__len__(self)

    def items(self):  # type: ignore[no-untyped-def]
        self._fill()
        return dict.items(self)

    def keys(self):  # type: ignore[no-untyped-def]
        self._fill()
        return dict.keys(self)

    def get(self, kind: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self._fill()
        return dict.get(self, kind, default)


KIND_LABELS: dict[str, str] = _KindLabels()


class _Machines(dict[str, Machine]):
    """``MACHINES.get(kind)``, as the replay reads it."""

    def get(self, kind: str, default: Machine | None = None) -> Machine | None:  # type: ignore[override]
        try:
            return machine_for(kind)
        except KeyError:
            return default

    def __getitem__(self, kind: str) -> Machine:
        return machine_for(kind)

    def __contains__(self, kind: object) -> bool:
        return isinstance(kind, str) and bool(_definitions(kind))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(known_kinds())

    def items(self):  # type: ignore[no-untyped-def]
        return known_kinds().items()

    def values(self):  # type: ignore[no-untyped-def]
        return known_kinds().values()

    def keys(self):  # type: ignore[no-untyped-def]
        return known_kinds().keys()

    def __len__(self) -> int:
        return len(known_kinds())


MACHINES: dict[str, Machine] = _Machines()


def __getattr__(name: str) -> Machine:
    # ``from models.machines import ROSTER``: a kind's machine by its name in capitals.
    if name.isupper():
        try:
            return machine_for(name.lower())
        except KeyError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
