"""The state machines of every case kind, declared as data.

A reader sees every state and action of a kind on one screen. Guards that need the database
(windows, quotas, eligibility) are named here and implemented in ``models.guards``; what an
action does beyond changing the state (cascades, notices) lives in ``models.actions``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Transition:
    action: str
    label: str  # 中文 for people
    sources: tuple[str, ...]
    target: str | None  # None: stays in the same state (e.g. attaching a document)
    tiers: tuple[str, ...]  # who may do it; "system" = the engine itself (lapse at a deadline)
    needs_reason: bool = False
    guards: tuple[str, ...] = ()


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
    # the lifecycle: nobody is offered them, ``find`` does not see them, final stays final.
    corrections: tuple[Transition, ...] = ()

    def allowed(self, state: str) -> list[Transition]:
        return [t for t in self.transitions if state in t.sources]

    def find(self, action: str, state: str) -> Transition | None:
        for t in self.transitions:
            if t.action == action and state in t.sources:
                return t
        return None

    def correction(self, action: str, state: str) -> Transition | None:
        return next((t for t in self.corrections if t.action == action and state in t.sources), None)

    def actions(self) -> set[str]:
        return {t.action for t in self.transitions}

    def state_label(self, state: str) -> str:
        return self.states.get(state, state)


T = Transition

# 集群遴选申报: a county government or a park committee applies for one zone type and track.
CLUSTER_APPLICATION = Machine(
    kind="cluster_application",
    label="集群遴选申报",
    initial="draft",
    states={
        "draft": "填报中",
        "submitted": "已提交待市级审核",
        "returned": "退回修改",
        "withdrawn": "已撤回",
        "lapsed": "逾期未提交",
        "recommended": "市级已推荐",
        "not_recommended": "市级未推荐",
        "prelim_passed": "初审通过",
        "prelim_failed": "初审未通过",
        "defence_scheduled": "已安排现场答辩",
        "defence_held": "已答辩待评审",
        "selected": "入选",
        "not_selected": "未入选",
    },
    transitions=(
        T(
            "submit",
            "提交申报",
            ("draft",),
            "submitted",
            ("county", "park"),
            guards=("window", "eligibility"),
        ),
        T(
            "resubmit",
            "修改后重新提交",
            ("returned",),
            "submitted",
            ("county", "park"),
            guards=("eligibility",),
        ),
        T(
            "withdraw",
            "撤回申报",
            ("draft", "submitted", "returned"),
            "withdrawn",
            ("county", "park"),
            needs_reason=True,
        ),
        T("return", "退回修改", ("submitted",), "returned", ("city",), needs_reason=True),
        T(
            "recommend",
            "推荐",
            ("submitted",),
            "recommended",
            ("city",),
            guards=("recommendation_open", "quota"),
        ),
        T(
            "not_recommend",
            "不予推荐",
            ("submitted", "returned"),
            "not_recommended",
            ("city",),
            needs_reason=True,
            guards=("recommendation_open",),
        ),
        # Taken off a list the province returned (or one not yet sent); the quota is released.
        T(
            "withdraw_recommendation",
            "撤销推荐",
            ("recommended",),
            "submitted",
            ("city",),
            needs_reason=True,
            guards=("recommendation_open",),
        ),
        T("lapse", "逾期关闭", ("draft",), "lapsed", ("system",)),
        T("pass_preliminary", "初审通过", ("recommended",), "prelim_passed", ("province",)),
        T(
            "fail_preliminary",
            "初审未通过",
            ("recommended",),
            "prelim_failed",
            ("province",),
            needs_reason=True,
        ),
        T(
            "schedule_defence",
            "安排现场答辩",
            ("prelim_passed", "defence_scheduled"),
            "defence_scheduled",
            ("province",),
            guards=("defence_time",),
        ),
        T("hold_defence", "完成现场答辩", ("defence_scheduled",), "defence_held", ("province",)),
        T("select", "确定入选", ("defence_held",), "selected", ("province",)),
        T("reject", "确定未入选", ("defence_held",), "not_selected", ("province",), needs_reason=True),
    ),
    final=frozenset({"withdrawn", "lapsed", "not_recommended", "prelim_failed", "selected", "not_selected"}),
    corrections=(
        # Only the platform sync may do it, with the platform's time of the submission as reason.
        T(
            "correct_lapse",
            "纠正逾期关闭（平台记录已按时提交）",
            ("lapsed",),
            "draft",
            ("platform",),
            needs_reason=True,
        ),
    ),
)

# 浙江制造精品: an enterprise applies for one product; the county checks it, the city (or the
# SOE office / an association) recommends within quota, the province reviews.
JINGPIN_APPLICATION = Machine(
    kind="jingpin_application",
    label="制造精品申报",
    initial="draft",
    states={
        "draft": "填报中",
        "submitted": "已提交待县级审核",
        "returned": "退回修改",
        "withdrawn": "已撤回",
        "lapsed": "逾期未提交",
        "county_approved": "县级审核通过待推荐",
        "recommended": "已推荐",
        "not_recommended": "未推荐",
        "prelim_passed": "初审通过",
        "prelim_failed": "初审未通过",
        "site_check": "现场核查中",
        "selected": "入选目录",
        "not_selected": "未入选",
    },
    transitions=(
        T(
            "submit",
            "提交申报",
            ("draft",),
            "submitted",
            ("enterprise", "county"),
            guards=("window", "eligibility"),
        ),
        T(
            "resubmit",
            "修改后重新提交",
            ("returned",),
            "submitted",
            ("enterprise", "county"),
            guards=("eligibility",),
        ),
        T(
            "withdraw",
            "撤回申报",
            ("draft", "submitted", "returned", "county_approved"),
            "withdrawn",
            ("enterprise", "county"),
            needs_reason=True,
        ),
        T("approve", "县级审核通过", ("submitted",), "county_approved", ("county", "city")),
        T(
            "return",
            "退回修改",
            ("submitted", "county_approved"),
            "returned",
            ("county", "city", "soe_group", "association"),
            needs_reason=True,
        ),
        T(
            "recommend",
            "推荐",
            ("county_approved", "submitted"),
            "recommended",
            ("city", "soe_group", "association"),
            guards=("reviewed", "recommendation_open", "quota"),
        ),
        T(
            "not_recommend",
            "不予推荐",
            ("county_approved", "submitted", "returned"),
            "not_recommended",
            ("city", "soe_group", "association"),
            needs_reason=True,
            guards=("recommendation_open",),
        ),
        # Taken off a list the province returned (or one not yet sent); the quota is released.
        T(
            "withdraw_recommendation",
            "撤销推荐",
            ("recommended",),
            "county_approved",
            ("city", "soe_group", "association"),
            needs_reason=True,
            guards=("recommendation_open",),
        ),
        T("lapse", "逾期关闭", ("draft",), "lapsed", ("system",)),
        T("pass_preliminary", "初审通过", ("recommended",), "prelim_passed", ("province",)),
        T(
            "fail_preliminary",
            "初审未通过",
            ("recommended",),
            "prelim_failed",
            ("province",),
            needs_reason=True,
        ),
        T("start_site_check", "安排现场核查", ("prelim_passed",), "site_check", ("province",)),
        T("select", "确定入选", ("prelim_passed", "site_check"), "selected", ("province",)),
        T(
            "reject",
            "确定未入选",
            ("prelim_passed", "site_check"),
            "not_selected",
            ("province",),
            needs_reason=True,
        ),
    ),
    final=frozenset({"withdrawn", "lapsed", "not_recommended", "prelim_failed", "selected", "not_selected"}),
    corrections=(
        # Only the platform sync may do it, with the platform's time of the submission as reason.
        T(
            "correct_lapse",
            "纠正逾期关闭（平台记录已按时提交）",
            ("lapsed",),
            "draft",
            ("platform",),
            needs_reason=True,
        ),
    ),
)

# 推荐: one per city (or SOE office / association) and program. It carries the sealed letter
# or summary table and, once submitted, fixes the list of recommended cases.
RECOMMENDATION = Machine(
    kind="recommendation",
    label="推荐报送",
    initial="draft",
    states={"draft": "编制中", "submitted": "已报送省经信厅", "none": "已报无推荐", "returned": "省厅退回"},
    transitions=(
        T(
            "attach",
            "上传签章推荐函/汇总表",
            ("draft", "returned"),
            None,
            ("city", "soe_group", "association"),
        ),
        T(
            "submit",
            "报送省经信厅",
            ("draft",),
            "submitted",
            ("city", "soe_group", "association"),
            guards=("letter", "quota"),
        ),
        # 无推荐: nothing on the list (no application to review, or none worth recommending).
        T(
            "report_none",
            "报送无推荐",
            ("draft", "returned"),
            "none",
            ("city", "soe_group", "association"),
            needs_reason=True,
            guards=("empty_list",),
        ),
        T("return", "退回修改", ("submitted", "none"), "returned", ("province",), needs_reason=True),
        T(
            "resubmit",
            "重新报送",
            ("returned",),
            "submitted",
            ("city", "soe_group", "association"),
            guards=("letter", "quota"),
        ),
    ),
    final=frozenset({"submitted", "none"}),
)

# 工作人员信息汇总表 (附件3): one per city and program, due 06-05.
ROSTER = Machine(
    kind="roster",
    label="工作人员信息汇总表",
    initial="pending",
    states={"pending": "待报送", "submitted": "已报送", "returned": "退回补正"},
    transitions=(
        T("submit", "报送", ("pending", "returned"), "submitted", ("city",)),
        T("return", "退回补正", ("submitted",), "returned", ("province",), needs_reason=True),
    ),
    final=frozenset({"submitted"}),
)

MACHINES: dict[str, Machine] = {
    m.kind: m for m in (CLUSTER_APPLICATION, JINGPIN_APPLICATION, RECOMMENDATION, ROSTER)
}

KIND_LABELS = {kind: m.label for kind, m in MACHINES.items()}


def machine_for(kind: str) -> Machine:
    try:
        return MACHINES[kind]
    except KeyError:
        raise KeyError(f"未知的案件类型：{kind}（应为 {'、'.join(MACHINES)}）") from None
