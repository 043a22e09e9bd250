"""The ``shenbao`` command line: one entry point for coordinators and operators.

Each command reads the clock once (real time, or --now / SHENBAO_NOW), opens one unit of work,
calls domain functions, and prints Chinese tables or --json. Prefect is imported only by the
commands that run flows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import ExitStack
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from calendars.campaign import CampaignFileError, CampaignSpec, builtin_campaign_files, word_meaning
from calendars.timeutil import format_deadline, format_local, parse_deadline, parse_instant
from calendars.workdays import UnknownYearError
from flows import output as out
from models.actions import ActionRefused, CaseNotFound, get_case, offered
from models.audit import AuditKeyMissing, events_for_case
from models.campaign import Campaign, campaign_kinds, get_campaign, resolve_kind, resolve_state
from models.case import PROGRAM_LABELS, Case
from models.context import Actor
from models.letters import LetterStore
from models.machines import KIND_LABELS, machine_for
from models.org import TIER_LABELS, Contact, Organisation
from models.sheets import ImportRejected
from operations import acts, identity
from operations.runtime import Runtime
from operations.settings import Settings

if TYPE_CHECKING:
    from models.imports import ImportSummary

# README: 0 ok, 1 audit problems found, 2 bad input, 3 action refused, 4 database unreachable,
# 5 another service holds the database (serve), 70 internal error (sysexits' EX_SOFTWARE: a bug,
# never 1, which would read as a tampered audit).
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3
EXIT_DB_UNREACHABLE = 4
EXIT_INTERNAL = 70

# The CLI's own way to put a refusal right; the web words its own (dashboard/web.py).
CLI_HINTS = {
    "reason_required": "请用 --reason 写明理由",
    "override_required": "如确需继续，请加 --override 规则编号=理由（每条一项）",
    "override_unknown": "--override 的规则编号须取自上面的检查结果",
    "letter_missing": "请先上传：shenbao case act 编号 attach --letter 文件名",
    "defence_time": "请用 --at 给出时间，如 --at 2026-08-10T09:00",
    "actor_missing": "请用 --as 单位 --by 姓名 说明身份",
}


class Fail(click.ClickException):
    """An error a coordinator can act on; printed in Chinese, exit code 2 (bad input) or 3 (refused)."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT, **data: Any) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[misc]  # click declares it on the class; each Fail has its own
        self.data = data  # what --json prints besides the message (rule, problems …)

    def show(self, file: Any = None) -> None:
        out.error(self.message)


def _outage_message(exc: BaseException) -> str:
    """describe_outage's wording, with the seconds actually configured for this command."""
    from models.db import Timeouts, describe_outage

    try:
        timeouts = Settings().db_timeouts
    except ValidationError:
        timeouts = Timeouts()
    message = describe_outage(exc, timeouts)
    # Busy or slow is a wait, not a wrong address: only an unanswered connection points at the URL.
    if message.startswith(("数据库无法访问", "连接数据库超时")):
        message += "（请检查 SHENBAO_DATABASE_URL）"
    return message


def handled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors into clear messages and exit codes instead of tracebacks."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return _translated(*args, **kwargs)
        except Fail as exc:
            if kwargs.get("as_json"):
                # A program reading --json gets the failure on stdout too, not only prose on stderr.
                out.print_json({"ok": False, "exit_code": exc.exit_code, "error": exc.message} | exc.data)
            raise

    def _translated(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ActionRefused as exc:
            raise Fail(
                f"操作被拒绝：{exc}{_cli_hint(exc)}",
                EXIT_REFUSED,
                rule=exc.rule,
                findings=[f.as_dict() for f in exc.findings],
                data=exc.data,
            ) from exc
        except CaseNotFound as exc:
            raise Fail(f"{str(exc).strip(chr(39) + chr(34))}（用 shenbao case list 查看编号）") from exc
        except ImportRejected as exc:
            raise Fail(
                f"{exc}\n（整个文件未导入，数据库未作任何修改）",
                problems=[
                    {"file": p.file, "row": p.row, "column": p.column, "message": p.message}
                    for p in exc.problems
                ],
            ) from exc
        except (
            CampaignFileError,
            AuditKeyMissing,
            UnknownYearError,
            LookupError,
            ValueError,
        ) as exc:
            raise Fail(str(exc).strip("'\"")) from exc
        except ValidationError as exc:
            raise Fail(str(exc)) from exc
        except Exception as exc:
            from sqlalchemy.exc import DBAPIError, OperationalError

            if isinstance(exc, OperationalError):
                raise Fail(_outage_message(exc), EXIT_DB_UNREACHABLE) from exc
            if isinstance(exc, DBAPIError):
                # e.g. a value longer than its column on PostgreSQL: nothing was written.
                raise Fail(f"数据库拒绝了这次写入（未作任何修改）：{str(exc.orig).splitlines()[0]}") from exc
            raise Fail(_internal_error(exc), EXIT_INTERNAL) from exc

    return wrapper


def _cli_hint(exc: ActionRefused) -> str:
    hint = CLI_HINTS.get(exc.rule, "")
    allowed = exc.data.get("allowed")
    if allowed is not None:
        offered = "、".join(f"{a['label']}({a['action']})" for a in allowed) or "无（已办结）"
        hint = f"可执行：{offered}" + (f"；{hint}" if hint else "")
    return f"\n  {hint}" if hint else ""


def _internal_error(exc: BaseException) -> str:
    """A bug, not the user's mistake: say so, keep the traceback on stderr for the report."""
    import traceback

    traceback.print_exception(exc, file=sys.stderr)
    return (
        f"内部错误（{type(exc).__name__}：{exc}）。这是程序缺陷而非输入错误，数据库未作修改；"
        "完整的出错信息已打印在上方（标准错误输出），请连同所用命令一并报告。"
    )


def _rt(ctx: click.Context) -> Runtime:
    return ctx.ensure_object(dict)["runtime"]


def identity_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--as 单位 --by 姓名 [--admin 理由]: who a writing command acts as (or SHENBAO_ACTOR)."""
    fn = click.option(
        "--admin",
        "admin_reason",
        metavar="理由",
        help="以管理员身份操作（不受层级与管辖限制，须写明理由，记入审计）",
    )(fn)
    fn = click.option("--by", metavar="姓名", help="操作人姓名（记入审计）")(fn)
    fn = click.option(
        "--as",
        "as_org",
        metavar="单位",
        help="以某单位身份办理（校验权限与管辖），如 杭州市、西湖区、省经信厅",
    )(fn)
    return fn


def _actor(rt: Runtime, as_org: str | None, by: str | None, admin_reason: str | None) -> Actor:
    """The person a writing command acts as: --as/--by, SHENBAO_ACTOR, or --admin; never a default."""
    claim = identity.claim_from(as_org, by, admin_reason, rt.settings.actor)
    with rt.db.read() as session:
        return identity.resolve(session, claim)


def _resolve_division(rt: Runtime, text: str | None, tier: str) -> str | None:
    if not text:
        return None
    from models.reference import load_divisions

    division, why = load_divisions().resolve_or_explain(text)
    if division is None or division.tier != tier:
        raise Fail(why or f"「{text}」不是{'设区市' if tier == 'city' else '县（市、区）'}")
    return division.code


def _default_campaign(rt: Runtime, campaign: str | None) -> str:
    if campaign:
        return campaign
    with rt.db.read() as session:
        from sqlmodel import select

        ids = session.exec(select(Campaign.id).order_by(Campaign.id)).all()
    if len(ids) == 1:
        return ids[0]
    raise Fail(f"请用 --campaign 指定批次（已有：{'、'.join(ids) or '无，请先 shenbao init'}）")


json_option = click.option("--json", "as_json", is_flag=True, help="以 JSON 输出，供程序读取")


# -- the group --------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--now", "now", metavar="TIME", help="以指定时间执行（模拟），如 2026-06-20T09:00；也可设 SHENBAO_NOW"
)
@click.option(
    "--database-url",
    metavar="URL",
    help="数据库地址（默认 SQLite <home>/shenbao.db）；也可设 SHENBAO_DATABASE_URL",
)
@click.pass_context
def cli(ctx: click.Context, now: str | None, database_url: str | None) -> None:
    """申报 shenbao：多层级申报工作的流程与截止时间引擎。

    \b
    常用：
      shenbao init                      建库、加载内置批次（calendars/campaigns/ 下的批次文件）
      shenbao campaign load 批次.yaml    加载其他批次文件（如 calendars/campaigns/available/）
      shenbao campaign show 2026-cluster-selection
      shenbao campaign form 2026-cluster-selection  申报表与上报表格的列名（导入按此读取）
      shenbao contacts import 通讯录.xlsx  导入通讯录（工作人员表的列 + 电子邮箱），不涉及报送任务
      shenbao roster import 名单.xlsx --submit  设区市报送工作人员信息汇总表（含电子邮箱列）
      shenbao case import 申报.xlsx --campaign 2026-cluster-selection
      shenbao case act CL26-00001 submit
      shenbao status --campaign 2026-cluster-selection
      shenbao history CL26-00001
      shenbao audit verify

    环境变量：SHENBAO_HOME（数据目录）、SHENBAO_DATABASE_URL、SHENBAO_NOW、SHENBAO_AUDIT_KEY_FILE。
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        raise Fail(f"配置错误：{exc}") from exc
    if database_url:
        settings.database_url = database_url
    if now:
        try:
            parse_instant(now)
        except ValueError as exc:
            raise Fail(f"--now: {exc}") from exc
    ctx.ensure_object(dict)["runtime"] = Runtime(settings, now_override=now)


# -- init ----------------------------------------------------------------------------------------


@cli.command()
@click.option("--no-campaigns", is_flag=True, help="只建库，不加载内置批次")
@identity_options
@json_option
@click.pass_context
@handled
def init(
    ctx: click.Context,
    no_campaigns: bool,
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
    as_json: bool,
) -> None:
    """建库或升级数据库结构（Alembic），写入浙江省行政区划，加载内置批次（须 --as/--by）。可重复运行。"""
    from models.registry import seed_divisions
    from models.schema import upgrade

    rt = _rt(ctx)
    # Loading campaigns is an audited act: know who before writing anything.
    claim = None if no_campaigns else identity.claim_from(as_org, by, admin_reason, rt.settings.actor)
    if claim is not None:
        identity.require_complete(claim)
    before, after = upgrade(rt.db)
    rt.audit(create=True)
    result: dict[str, Any] = {
        "database": rt.db.safe_url,
        "schema_from": before,
        "schema_to": after,
        "campaigns": {},
    }
    now = rt.now()
    with rt.db.write() as session:
        result["divisions_added"] = seed_divisions(session)
    if claim is not None:
        with rt.db.read() as session:
            actor = identity.resolve(session, claim)
        for path in builtin_campaign_files():
            campaign, changes = acts.load_campaign(
                rt, actor, path.read_text(encoding="utf-8"), origin=path.name, now=now
            )
            result["campaigns"][campaign.id] = changes
    if as_json:
        out.print_json(result)
        return
    out.line(f"数据库：{result['database']}")
    out.line(f"结构版本：{before or '（新建）'} → {after}")
    out.line(f"行政区划：新增 {result['divisions_added']} 个（省、11 个设区市、90 个县（市、区））")
    for cid, changes in result["campaigns"].items():
        _print_changes(f"批次 {cid}", changes or ["已是最新"])
    out.line(f"审计密钥：{rt.settings.resolved_key_file}（请妥善保管，勿与数据库放在同一备份中）")


# -- campaigns -------------------------------------------------------------------------------------


@cli.group()
def campaign() -> None:
    """批次：列出、查看环节与截止时间、加载批次文件。"""


@campaign.command("list")
@json_option
@click.pass_context
@handled
def campaign_list(ctx: click.Context, as_json: bool) -> None:
    """列出已加载的批次。"""
    from sqlmodel import select

    from models.imports import stored_programs

    rt = _rt(ctx)
    with rt.db.read() as session:
        rows = session.exec(select(Campaign).order_by(Campaign.id)).all()
        # The program's name as the database's campaign files give it (a third campaign's too).
        named = {p.id: p.name for p in stored_programs(session).values()}
        data: list[dict[str, Any]] = [
            {
                "id": c.id,
                "program": c.program,
                "program_name": named.get(c.program, c.program),
                "name": c.name,
                "notice": c.spec().notice,
                "loaded_at": c.loaded_at,
            }
            for c in rows
        ]
    if as_json:
        out.print_json(data)
        return
    out.table(
        "批次",
        ["编号", "类型", "名称", "文号", "加载时间"],
        [
            [
                d["id"],
                d["program_name"],
                d["name"],
                d["notice"],
                format_local(d["loaded_at"]),
            ]
            for d in data
        ],
    )


@campaign.command("show")
@click.argument("campaign_id")
@json_option
@click.pass_context
@handled
def campaign_show(ctx: click.Context, campaign_id: str, as_json: bool) -> None:
    """查看批次的各环节：谁办理、截止时间（上海时间，含星期）、剩余工作日、待办数量；及上报的表格（exports:）。"""
    from models.status import stage_views

    rt = _rt(ctx)
    now = rt.now()
    with rt.db.read() as session:
        c = get_campaign(session, campaign_id)
        views = stage_views(session, c, now, rt.calendar)
        spec = c.spec()
    if as_json:
        out.print_json(
            {
                "id": spec.id,
                "name": spec.name,
                "notice": spec.notice,
                "now": now,
                "stages": [v.as_dict() for v in views],
                "exports": spec.exports.listed(year=spec.issued.year),
            }
        )
        return
    out.line(f"{spec.name}（{spec.notice}）")
    out.line(f"当前时间：{format_local(now)}")
    rows = []
    for v in views:
        due = v.due_text
        if v.due_at and v.version > 1:
            due += f"（第{v.version}版）"
        if v.waiting:
            left = "暂缓（见下）"
        elif v.working_days_left is None:
            left = "—"
        elif v.working_days_left < 0:
            left = "已截止"
        else:
            left = f"{v.working_days_left} 个工作日"
        rows.append(
            [
                v.stage.id,
                v.stage.name,
                TIER_LABELS.get(v.stage.actor, v.stage.actor),
                due,
                left,
                v.pending,
                v.stage.source,
            ]
        )
    out.table(None, ["环节", "名称", "办理方", "截止时间", "剩余", "待办", "依据"], rows)
    for v in views:
        if v.waiting:
            what = "剩余工作日、提醒与督办暂缓" if v.due_at else "截止时间按工作日计算，加载前为另行通知"
            out.line(f"⚠ {v.stage.id}（{v.stage.name}）：{v.waiting}，{what}")
    for contact in spec.province_contacts:
        out.line(f"联系人：{contact.role} {contact.name} {contact.phone}")
    _print_exports(spec)


def _print_exports(spec: CampaignSpec) -> None:
    """The official forms the campaign file declares (``exports:``), which the dashboard produces."""
    listed = spec.exports.listed(year=spec.issued.year)
    if not listed:
        out.line("上报的表格：批次文件未写 exports:（看板“导出”没有本批次的上报表格）")
        return
    out.line("上报的表格（批次文件 exports:，看板“导出”按此生成）：")
    for form in listed:
        # A header may break its line in the cell (产品类别\n（…）): one line here.
        headers = " | ".join(" ".join(c["header"].split()) for c in form["columns"])
        out.line(f"  {form['annex']} {form['title']}（{form['name']}）：{headers}")


@campaign.command("form")
@click.argument("campaign_id")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出")
@click.pass_context
@handled
def campaign_form(ctx: click.Context, campaign_id: str, as_json: bool) -> None:
    """查看批次的申报表：导入表（case import / case add）的每一列、是否必填、类型与可选值；及上报的表格（exports:）。"""
    rt = _rt(ctx)
    with rt.db.read() as session:
        spec = get_campaign(session, campaign_id).spec()
    if spec.form is None:
        raise Fail(f"批次 {campaign_id} 没有申报表（form:）")
    fields = [f for f in spec.form.fields if f.column_of is None]
    if as_json:
        out.print_json(
            {
                "id": spec.id,
                "kind": spec.form.kind,
                "fields": [
                    {
                        "key": f.key,
                        "label": f.label,
                        "aliases": list(f.aliases),
                        "type": f.type,
                        "required": f.required,
                        "units": list(f.units),
                        "choices": [f.choice_label(c) for c in f.choices],
                        # Other spellings an import takes for a choice, and the choice each means.
                        "synonyms": {alias: f.choice_label(c) for alias, c in f.synonyms.items()},
                    }
                    for f in fields
                ],
                "exports": spec.exports.listed(year=spec.issued.year),
            }
        )
        return
    rows = []
    for f in fields:
        if f.required_unless is not None:
            required = "是（部分可空）"
        else:
            required = "是" if f.required else "否"
        note = "、".join(f.choice_label(c) for c in f.choices) if f.choices else "、".join(f.units)
        if f.synonyms:
            also = "、".join(f"{alias}→{f.choice_label(c)}" for alias, c in f.synonyms.items())
            note += f"（也认：{also}）"
        rows.append([f.label, required, word_meaning(f.type), note, "、".join(f.aliases)])
    out.table(f"{spec.name} 申报表", ["列名", "必填", "类型", "可选值/单位", "其他写法"], rows)
    _print_exports(spec)
    if spec.exports.roster is not None:
        out.line("  工作人员表的列名也是 roster import、contacts import 认得的列名（另须有「电子邮箱」列）")


@campaign.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@identity_options
@click.pass_context
@handled
def campaign_load(
    ctx: click.Context, file: Path, as_org: str | None, by: str | None, admin_reason: str | None
) -> None:
    """加载或更新一个批次文件（YAML）。截止时间的变化记为调整事件并写入审计。"""
    rt = _rt(ctx)
    actor = _actor(rt, as_org, by, admin_reason)
    text = file.read_text(encoding="utf-8")
    loaded, changes = acts.load_campaign(rt, actor, text, origin=str(file))
    _print_changes(f"批次 {loaded.id}（{loaded.name}）", changes or ["内容未变化"])
    from models.campaign_check import check_campaign

    _print_warnings(check_campaign(text, origin=str(file), calendar=rt.calendar).warnings)


def _authoring_calendar(rt: Runtime) -> Any:
    """The days a file is checked against: this home's (with the years ``calendar load`` stored),
    or the packaged ones where there is no database yet; validate never creates one."""
    from calendars.workdays import load_default_calendar

    env = {"SHENBAO_WORKDAYS_FILE": str(rt.settings.workdays_file)} if rt.settings.workdays_file else {}
    url = rt.settings.resolved_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return load_default_calendar(env)
    try:
        return rt.calendar
    except Exception as exc:  # a database out of reach: the file can still be checked
        from sqlalchemy.exc import SQLAlchemyError

        if not isinstance(exc, SQLAlchemyError):
            raise
        out.err_console.print(
            "提示：无法读取数据库中已加载的节假日安排，按内置工作日数据检查", markup=False, highlight=False
        )
        return load_default_calendar(env)


def _print_warnings(warnings: list[str]) -> None:
    """Warnings apart from errors, on stderr: the file loads; the author reads what may not be meant."""
    for warning in warnings:
        out.warning(f"{warning}（不影响加载，请核对是否本意）")


def _print_changes(what: str, changes: list[str]) -> None:
    """A load's outcome, then each change (the file's, as `campaign diff` lists them, and what
    the engine did about them) on a line of its own."""
    out.line(f"{what}：{changes[0]}")
    for change in changes[1:]:
        out.line(f"  - {change}")


@campaign.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
@handled
def campaign_validate(ctx: click.Context, file: Path) -> None:
    """检查一个批次文件（不加载）：每处错误注明行号、键和应填写的内容。

    \b
    例：shenbao campaign validate calendars/campaigns/available/2026-zjtx.yaml
    有错误时退出码为 2；只有「提示」（可以加载，但多半不是本意，如门槛表漏了一个类别）时退出码为 0。
    文件格式见 calendars/campaigns/FORMAT.md。
    """
    from models.campaign_check import check_campaign

    checked = check_campaign(
        file.read_text(encoding="utf-8"), origin=str(file), calendar=_authoring_calendar(_rt(ctx))
    )
    _print_warnings(checked.warnings)
    if checked.problems:
        raise Fail("\n".join(checked.problems))
    spec = checked.spec
    assert spec is not None
    kinds = "、".join(f"{k}（{v.label}，{len(v.states)} 个状态）" for k, v in spec.kinds.items())
    out.line(
        f"{file}: 格式正确。批次 {spec.id}（{spec.name}）：{len(spec.stages)} 个环节；案件类型 {kinds or '（沿用内置）'}"
    )
    from models.machines import describe_action_roles, describe_roles, machine_of

    # What the engine will do at each action and with each state (FORMAT.md §3), for the author to check.
    for kind, declared in spec.kinds.items():
        machine = machine_of(kind, declared)
        roles = describe_roles(machine)
        if roles and kind not in ("recommendation", "roster"):
            out.line(f"  {kind} 各操作的作用：{describe_action_roles(machine) or '无'}")
            out.line(f"  {kind} 各状态的作用：{roles}")


@campaign.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
@handled
def campaign_diff(ctx: click.Context, old: Path, new: Path) -> None:
    """比较两个版本的批次文件：环节、截止时间、状态机、资格条件、申报表与名额的变化。

    \b
    例：shenbao campaign diff 旧版.yaml 新版.yaml
    """
    from calendars.campaign import load_campaign_file
    from calendars.campaign_diff import diff_campaigns

    try:
        changes = diff_campaigns(load_campaign_file(old), load_campaign_file(new))
    except CampaignFileError as exc:
        raise Fail(str(exc)) from exc
    if not changes:
        out.line("两个文件内容一致（无影响办理的变化）")
    for line in changes:
        out.line(f"- {line}")


# -- deadlines -----------------------------------------------------------------------------------


@cli.group()
def deadline() -> None:
    """截止时间：公布“另行通知”的日期，或延期/提前。每次调整都记入审计并重排提醒。"""


@deadline.command("set")
@click.argument("campaign_id")
@click.argument("stage_id")
@click.argument("when", required=False)
@click.option("--tba", is_flag=True, help="改回“另行通知”（无日期）")
@click.option("--reason", required=True, help="调整理由（必填，记入审计）")
@identity_options
@click.pass_context
@handled
def deadline_set(
    ctx: click.Context,
    campaign_id: str,
    stage_id: str,
    when: str | None,
    tba: bool,
    reason: str,
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
) -> None:
    """设定环节截止时间。WHEN 按通知写法：2026-07-10（当日24:00前）、“2026-06-25 24:00”、“2026-08-10 17:00”。"""
    if bool(when) == tba:
        raise Fail("请给出新的截止时间 WHEN，或用 --tba 改为另行通知（二者选一）")
    due = None if tba else parse_deadline(when or "")
    rt = _rt(ctx)
    actor = _actor(rt, as_org, by, admin_reason)
    row = acts.move_deadline(rt, actor, campaign_id, stage_id, due, reason)
    out.line(
        f"{campaign_id}/{stage_id} 截止时间已设为 {format_deadline(row.due_at) if row.due_at else '另行通知'}"
        f"（第{row.version}版）"
    )


# -- roster ----------------------------------------------------------------------------------------


@cli.group()
def roster() -> None:
    """工作人员信息汇总表（批次文件 exports: roster: 所写的表，如 2026 年的附件3）：导入联系人，查看名单。"""


@roster.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--replace",
    is_flag=True,
    help="此表为所列单位的完整名单：名单上已没有的人员停用（不删除，历史可查；申报联系人不受影响）",
)
@click.option(
    "--submit",
    is_flag=True,
    help="同时报送：名单所列设区市的“工作人员信息汇总表”任务记为已报送（须以设区市身份，或 --admin 代报）",
)
@identity_options
@json_option
@click.pass_context
@handled
def roster_import(
    ctx: click.Context,
    file: Path,
    replace: bool,
    submit: bool,
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
    as_json: bool,
) -> None:
    """导入 CSV/XLSX：单位（市、县(市、区)）| 处室/科室 | 姓名 | 职务 | 手机号码 | 工作类别（备注）| 电子邮箱。

    列名按已加载批次文件 exports: roster: 的 header 及常见写法（见 shenbao campaign form 批次编号）；
    工作类别填已加载批次的中文名（program_name / program_words），一项或多项，都负责填「全部」。

    全部校验通过才写入（任一行有误则整份不导入，并列出每处错误的行与列）。

    只导入联系人；加 --submit 才同时报送名单所属设区市的“工作人员信息汇总表”任务（以设区市身份 --as 杭州市 --by 姓名；省级代报须加 --admin 理由，记入审计）。

    只想更新通讯录、不涉及报送，请用 shenbao contacts import。
    """
    rt = _rt(ctx)
    actor = _actor(rt, as_org, by, admin_reason)
    summary = acts.import_roster(rt, actor, file, replace=replace, submit=submit)
    _print_import(file, summary, as_json)


def _print_import(file: Path, summary: ImportSummary, as_json: bool) -> None:
    if as_json:
        out.print_json(summary.__dict__)
        return
    out.line(
        f"{file.name}：{summary.rows} 行，新增联系人 {len(summary.created)} 人，更新 {summary.updated} 人"
    )
    for note in summary.notes:
        out.line(f"  {note}")


@roster.command("list")
@click.option("--city", help="设区市，如 杭州市")
@click.option(
    "--program",
    help="工作类别：批次文件的 program（如 cluster）或其中文名（如 集群遴选）；已加载批次的工作类别均可",
)
@json_option
@click.pass_context
@handled
def roster_list(ctx: click.Context, city: str | None, program: str | None, as_json: bool) -> None:
    """列出联系人。"""
    from sqlmodel import col, select

    from models.imports import stored_programs

    rt = _rt(ctx)
    city_code = _resolve_division(rt, city, "city")
    with rt.db.read() as session:
        # The programs are the loaded campaign files', not a list fixed here.
        known = stored_programs(session)
        if program:
            named = {p.name: p.id for p in known.values()}
            if program not in known and program not in named:
                listed = "、".join(f"{p.id}（{p.name}）" for p in known.values())
                raise click.BadParameter(
                    f"没有工作类别「{program}」（已加载：{listed}）", param_hint="--program"
                )
            program = named.get(program, program)
        query = select(Contact, Organisation).join(Organisation, col(Organisation.id) == col(Contact.org_id))
        if city_code:
            query = query.where(Organisation.city_code == city_code)
        rows = [
            (c, o)
            for c, o in session.exec(query.order_by(Organisation.id, Contact.name)).all()
            if not program or c.works_on(program)
        ]
    data: list[dict[str, Any]] = [
        {
            "org": o.name,
            "org_id": o.id,
            "department": c.department,
            "name": c.name,
            "title": c.title,
            "mobile": c.mobile,
            "zzd_mobile": c.zzd_mobile,
            "email": c.email,
            "programs": c.programs.split(",") if c.programs else [],  # []: every program
            "active": c.active,
            "source": c.source,
        }
        for c, o in rows
    ]
    if as_json:
        out.print_json(data)
        return
    out.table(
        f"联系人（{len(data)} 人）",
        ["单位", "处室/科室", "姓名", "职务", "手机", "邮箱", "工作"],
        [
            [
                d["org"],
                d["department"],
                d["name"],
                d["title"],
                d["mobile"],
                d["email"],
                _works_on(d["programs"], {p.id: p.name for p in known.values()}),
            ]
            for d in data
        ],
    )


def _works_on(programs: list[str], names: dict[str, str]) -> str:
    """A contact's programs by the names the loaded campaign files give them; 「全部」 for every one
    (none named, or each loaded program: what a roster's 「全部」 was stored as)."""
    if not programs or set(names) <= set(programs):
        return "全部"
    return "、".join(names.get(p, PROGRAM_LABELS.get(p, p)) for p in programs)


# -- contacts --------------------------------------------------------------------------------------


@cli.group()
def contacts() -> None:
    """通讯录：导入联系人（省厅通讯录、往年名单等与工作人员信息汇总表同列的表），不涉及任何报送任务。"""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--source", help="来源名称，记在每位联系人上，如 「省厅通讯录 2026-05-26」（默认：文件名 + 今天日期）"
)
@click.option(
    "--replace-source",
    metavar="来源名称",
    help="此表取代该来源以前导入的通讯录：该来源中本表已没有的人员停用（不删除，历史可查）",
)
@identity_options
@json_option
@click.pass_context
@handled
def contacts_import(
    ctx: click.Context,
    file: Path,
    source: str | None,
    replace_source: str | None,
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
    as_json: bool,
) -> None:
    """导入 CSV/XLSX（与 roster import 同列）：单位 | 处室/科室 | 姓名 | 职务 | 手机号码 | 工作类别（备注）| 电子邮箱。

    列名按已加载批次文件 exports: roster: 的 header 及常见写法（见 shenbao campaign form 批次编号）。
    全部校验通过才写入（任一行有误则整份不导入）。每位联系人记下来源、负责工作（已加载批次的工作类别）、邮箱和浙政钉手机号。

    任何设区市的“工作人员信息汇总表”任务都不会因此记为已报送；已被名单停用的人员也不会因通讯录而恢复。
    """
    rt = _rt(ctx)
    actor = _actor(rt, as_org, by, admin_reason)
    summary = acts.import_directory(rt, actor, file, source=source, replace_source=replace_source)
    _print_import(file, summary, as_json)


# -- cases -----------------------------------------------------------------------------------------


@cli.group()
def case() -> None:
    """案件（申报、推荐、名单任务）：新增、导入、查看、办理。"""


@case.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--campaign", "campaign_id", help="批次编号，如 2026-cluster-selection")
@identity_options
@json_option
@click.pass_context
@handled
def case_import(
    ctx: click.Context,
    file: Path,
    campaign_id: str | None,
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
    as_json: bool,
) -> None:
    """批量导入申报（CSV/XLSX）。列名按批次文件 form: 的 label/aliases，见 shenbao campaign form 批次编号。

    全部校验通过才写入（任一行有误则整份不导入，并列出每处错误的行与列）。
    """
    rt = _rt(ctx)
    actor = _actor(rt, as_org, by, admin_reason)
    campaign_id = _default_campaign(rt, campaign_id)
    summary = acts.import_cases(rt, actor, campaign_id, file, progress=_import_progress)
    if as_json:
        out.print_json(summary.__dict__)
        return
    first = summary.created[0] if summary.created else "-"
    last = summary.created[-1] if summary.created else "-"
    out.line(
        f"{file.name}：导入 {len(summary.created)} 个申报（{first} … {last}），新建单位 {summary.organisations} 个"
    )
    for note in summary.notes:
        out.line(f"  {note}")


def _import_progress(what: str, done: int, total: int) -> None:
    """On stderr, so that --json output stays one document: a long import says how far it got."""
    if what == "checked":
        sys.stderr.write(f"已校验 {done:,} 行…\n")
    elif total >= 20_000:  # a few chunks at least; a small file is done before anyone looks
        sys.stderr.write(f"已写入 {done:,} / {total:,} 行（{done * 100 // total}%）\n")
    sys.stderr.flush()


@case.command("add")
@click.option("--campaign", "campaign_id", help="批次编号")
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="列名=值",
    help="按导入表的列名给值，可重复，如 --field 申报单位=西湖区 --field 申报类型=协同区",
)
@identity_options
@click.pass_context
@handled
def case_add(
    ctx: click.Context,
    campaign_id: str | None,
    fields: tuple[str, ...],
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
) -> None:
    """新增一个申报。字段与导入表相同，经过同样的校验（一行的导入）。

    各列的列名、是否必填、可选值见 shenbao campaign form 批次编号（批次文件的 form:）。
    """
    import tempfile

    from models.sheets import write_sheet

    if not fields:
        raise Fail("请用 --field 列名=值 给出申报内容（见 shenbao case add --help）")
    pairs = []
    for f in fields:
        if "=" not in f:
            raise Fail(f"--field 应为 列名=值，收到：{f}")
        k, v = f.split("=", 1)
        pairs.append((k.strip(), v.strip()))
    rt = _rt(ctx)
    actor = _actor(rt, as_org, by, admin_reason)
    campaign_id = _default_campaign(rt, campaign_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "命令行输入.csv"
        write_sheet(path, [k for k, _ in pairs], [[v for _, v in pairs]])
        summary = acts.import_cases(rt, actor, campaign_id, path)
    out.line(f"已新增 {summary.created[0]}")


def _case_dict(session: Any, case: Case) -> dict[str, Any]:
    machine = machine_for(case.kind, case.campaign_id)
    org = session.get(Organisation, case.org_id)
    spec = get_campaign(session, case.campaign_id).spec()
    findings, checked = case.findings, True
    if case.state == machine.initial:
        # Not yet submitted: show what the submit check would say, so the applicant can fix it first.
        from models.eligibility import preview_findings

        preview = preview_findings(session, spec, case)
        if preview is not None:
            findings, checked = preview, False
    return {
        "ref": case.ref,
        "campaign": case.campaign_id,
        "kind": case.kind,
        "kind_label": KIND_LABELS[case.kind],
        "state": case.state,
        "state_label": machine.state_label(case.state),
        "state_since": case.state_since,
        "title": case.title,
        "org": org.name if org else case.org_id,
        "org_id": case.org_id,
        "city_code": case.city_code,
        "county_code": case.county_code,
        "zone_type": case.zone_type,
        # As the campaign's form names and labels them (申报类型：核心区).
        "zone_type_name": spec.field_label("zone_type"),
        "zone_type_label": spec.column_label("zone_type", case.zone_type),
        "category": case.category,
        "category_name": spec.field_label("category"),
        "category_label": spec.column_label("category", case.category),
        "track": case.track,
        "track_name": spec.column_name("track") or "赛道",
        "track_label": spec.column_label("track", case.track),
        "recommender_id": case.recommender_id,
        "quota_bucket": case.quota_bucket,
        "defence_at": case.defence_at,
        "letter": case.letter,
        "external_id": case.external_id,
        "attrs": case.attrs,
        "labels": {key: spec.field_label(key) for key in case.attrs},
        # A choice as the form labels it (创建类, not create): what case show prints.
        "attrs_shown": {key: spec.shown_value(key, value) for key, value in case.attrs.items()},
        "case_deadlines": _case_deadlines(session, spec, case),
        "findings": findings,
        "findings_are_preview": not checked,
        "allowed_actions": [
            {"action": t.action, "label": t.label, "needs_reason": t.needs_reason}
            for t in offered(machine, case.state)
        ],
    }


def _case_deadlines(session: Any, spec: CampaignSpec, case: Case) -> list[dict[str, Any]]:
    """The case's own deadlines (a returned application's resubmission, N working days after
    its return): each per-case stage the case has met, with its date."""
    from sqlmodel import select

    from models.campaign import CaseDeadline

    rows = session.exec(
        select(CaseDeadline).where(CaseDeadline.case_id == case.id).order_by(CaseDeadline.stage_id)
    ).all()
    found = []
    for row in rows:
        stage = next((s for s in spec.stages if s.id == row.stage_id), None)
        if stage is None:
            continue
        found.append(
            {
                "stage": stage.id,
                "name": stage.name,
                "due_at": row.due_at,
                "due_text": format_deadline(row.due_at) if row.due_at else "待节假日安排公布后计算",
                "rule": stage.relative.describe() if stage.relative else "",
                "version": row.version,
                "pending": case.state in stage.pending_states,
            }
        )
    return found


@case.command("show")
@click.argument("ref")
@json_option
@click.pass_context
@handled
def case_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """查看一个案件：字段、当前状态、资格检查结果、可执行的操作。"""
    rt = _rt(ctx)
    with rt.db.read() as session:
        data = _case_dict(session, get_case(session, ref))
    if as_json:
        out.print_json(data)
        return
    out.line(f"{data['ref']}  {data['kind_label']}  {data['title']}")
    out.line(f"状态：{data['state_label']}（{data['state']}，自 {format_local(data['state_since'])}）")
    # The case's indexed columns, each named by the form and only where it has a value.
    shown = [
        f"{data[f'{column}_name']}：{data[f'{column}_label']}"
        for column in ("zone_type", "category", "track")
        if data[column]
    ]
    if shown:
        out.line("  ".join(shown))
    for d in data["case_deadlines"]:
        state = "" if d["pending"] else "；本案件已不在此环节"
        out.line(f"本案件「{d['name']}」截止：{d['due_text']}（{d['rule']}{state}）")
    if data["defence_at"]:
        out.line(f"现场答辩：{format_local(data['defence_at'])}")
    if data["letter"]:
        out.line(f"签章文件：{data['letter']}")
    if data["quota_bucket"]:
        out.line(f"占用名额：{data['quota_bucket']}")
    for key, value in data["attrs"].items():
        if value not in (None, "") and key != "source_row":
            value = data["attrs_shown"][key]
            text = {True: "是", False: "否"}.get(value, value) if isinstance(value, bool) else value
            out.line(f"  {data['labels'].get(key, key)}：{text}")
    if data["findings"] and data["findings_are_preview"]:
        out.line("资格预检（提交时将按此检查）：")
    for f in data["findings"]:
        mark = {"block": "✗", "in_principle": "!", "info": "·"}.get(f["severity"], "?")
        extra = f"（已说明理由：{f['override']}）" if f.get("override") else ""
        out.line(f"  {mark} [{f['rule']}] {f['message']}{extra}")
    allowed = "、".join(f"{a['label']}({a['action']})" for a in data["allowed_actions"]) or "无（已办结）"
    out.line(f"可执行：{allowed}")


@case.command("list")
@click.option("--campaign", "campaign_id", help="批次编号")
@click.option(
    "--kind",
    metavar="类型",
    help="案件类型：已加载批次文件 kinds: 中的编号或中文名（如 cluster_application、集群申报）",
)
@click.option("--city", help="设区市")
@click.option("--county", help="县（市、区）")
@click.option("--state", help="状态：编号或中文名，如 draft、submitted、填报中")
@click.option("--limit", default=200, show_default=True, help="最多列出多少条")
@json_option
@click.pass_context
@handled
def case_list(
    ctx: click.Context,
    campaign_id: str | None,
    kind: str | None,
    city: str | None,
    county: str | None,
    state: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """按条件列出案件。"""
    from models.status import list_cases

    rt = _rt(ctx)
    city_code = _resolve_division(rt, city, "city")
    county_code = _resolve_division(rt, county, "county")
    with rt.db.read() as session:
        if kind:
            kind = resolve_kind(session, kind, campaign_id)
        if state:
            state = resolve_state(session, state, kind, campaign_id)
        cases = list_cases(
            session, campaign_id, kind=kind, city=city_code, county=county_code, state=state, limit=limit
        )
        data: list[dict[str, Any]] = [
            {
                "ref": c.ref,
                "kind": c.kind,
                "state": c.state,
                "state_label": machine_for(c.kind, c.campaign_id).state_label(c.state),
                "title": c.title,
                "track": c.track,
                "track_label": get_campaign(session, c.campaign_id).spec().column_label("track", c.track),
                "since": c.state_since,
            }
            for c in cases
        ]
    if as_json:
        out.print_json(data)
        return
    out.table(
        f"案件（{len(data)} 条）",
        ["编号", "类型", "名称", "赛道", "状态", "自"],
        [
            [
                d["ref"],
                KIND_LABELS[d["kind"]],
                d["title"],
                d["track_label"],
                d["state_label"],
                format_local(d["since"]),
            ]
            for d in data
        ],
    )


def _parse_overrides(values: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for v in values:
        if "=" not in v:
            raise Fail(f"--override 应为 规则编号=理由，收到：{v}")
        k, why = v.split("=", 1)
        if not why.strip():
            raise Fail(f"--override {k}: 理由不能为空")
        result[k.strip()] = why.strip()
    return result


@case.command("act")
@click.argument("ref")
@click.argument("action")
@click.option("--reason", default="", help="理由（退回、不予推荐、撤回等必填）")
@click.option(
    "--override",
    "overrides",
    multiple=True,
    metavar="规则=理由",
    help="对“原则上”条件说明理由后继续，如 --override revenue_threshold=细分领域达世界级水平",
)
@identity_options
@click.option("--at", "at", metavar="TIME", help="安排现场答辩的时间，如 2026-08-10T09:00")
@click.option(
    "--letter",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="文件",
    help="签章推荐函/汇总表的扫描件（PDF、OFD 或图片），存入数据目录（attach、submit）",
)
@json_option
@click.pass_context
@handled
def case_act(
    ctx: click.Context,
    ref: str,
    action: str,
    reason: str,
    overrides: tuple[str, ...],
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
    at: str | None,
    letter: Path | None,
    as_json: bool,
) -> None:
    """办理案件：ACTION 是批次文件中该类案件的操作编号，case show 的“可执行”按编号和中文名列出当前可办的操作。

    内置批次如 submit 提交、return 退回、recommend 推荐、not_recommend 不予推荐、withdraw 撤回、
    approve 县级审核通过、pass_preliminary/fail_preliminary 初审、schedule_defence 安排答辩、
    hold_defence 完成答辩、select/reject 评审结果、attach 上传推荐函；其他批次用其文件中的编号（如 tuijian 推荐）。

    不允许的操作会被拒绝并说明原因（当前状态、截止时间、名额、资格条件），拒绝本身也记入审计；退出码 3。
    """
    rt = _rt(ctx)
    params: dict[str, Any] = {}
    if at:
        params["at"] = parse_instant(at)
    actor = _actor(rt, as_org, by, admin_reason)
    with ExitStack() as stack:
        if letter:
            # Stored under SHENBAO_HOME/letters only if the action goes through.
            store = LetterStore.under(rt.settings.home)
            params["letter"] = stack.enter_context(store.attaching(letter.name, letter.read_bytes()))
        acts.act(rt, actor, ref, action, reason=reason, overrides=_parse_overrides(overrides), params=params)
    with rt.db.read() as session:
        data = _case_dict(session, get_case(session, ref))
    if as_json:
        out.print_json(data)
        return
    machine = machine_for(data["kind"], data["campaign"])
    out.line(f"{data['ref']} {data['title']}：{machine.state_label(data['state'])}")
    # Every action that matters gives its actor a receipt (the event, its proof, a signed checkpoint).
    out.line(
        f"审计回执：shenbao audit receipt {data['ref']} --out 回执.json（离线核对：shenbao audit check-receipt 回执.json）"
    )


# -- status and history -------------------------------------------------------------------------


@cli.command()
@click.option("--campaign", "campaign_id", help="批次编号（默认全部）")
@click.option(
    "--kind",
    metavar="类型",
    help="案件类型：已加载批次文件 kinds: 中的编号或中文名（默认各批次的申报）",
)
@click.option("--city", help="设区市：按县（市、区）展开")
@click.option("--county", help="县（市、区）：按申报单位展开")
@click.option("--state", help="只统计某一状态（编号或中文名）")
@json_option
@click.pass_context
@handled
def status(
    ctx: click.Context,
    campaign_id: str | None,
    kind: str | None,
    city: str | None,
    county: str | None,
    state: str | None,
    as_json: bool,
) -> None:
    """进度一览：各设区市（或县、申报单位）× 状态的数量，以及各环节的截止时间与待办。"""
    from sqlmodel import select

    from models.status import board, stage_views

    rt = _rt(ctx)
    now = rt.now()
    city_code = _resolve_division(rt, city, "city")
    county_code = _resolve_division(rt, county, "county")
    results = []
    with rt.db.read() as session:
        campaigns = (
            [get_campaign(session, campaign_id)]
            if campaign_id
            else list(session.exec(select(Campaign).order_by(Campaign.id)))
        )
        if kind:
            kind = resolve_kind(session, kind, campaign_id)
            # A kind of one campaign says nothing of the others: only those that have it.
            campaigns = [c for c in campaigns if kind in campaign_kinds(c.spec())]
        if state:
            state = resolve_state(session, state, kind, campaign_id)
        for c in campaigns:
            k = kind or c.spec().application_kind
            b = board(session, c.id, k, city=city_code, county=county_code, state=state)
            views = stage_views(session, c, now, rt.calendar, city=city_code, county=county_code)
            results.append((c, b, views))
    if as_json:
        out.print_json(
            [
                {"campaign": c.id, "now": now, "board": b.as_dict(), "stages": [v.as_dict() for v in views]}
                for c, b, views in results
            ]
        )
        return
    out.line(f"当前时间：{format_local(now)}")
    for c, b, views in results:
        machine = machine_for(b.kind, c.id)
        used_states = [s for s in b.states if b.total().get(s)] or b.states[:3]
        label = {"city": "设区市", "county": "县（市、区）", "applicant": "申报单位"}[b.group_by]
        rows = [
            [name, *[counts.get(s, 0) for s in used_states], sum(counts.values())]
            for _code, name, counts in b.rows
        ]
        total = b.total()
        rows.append(["合计", *[total.get(s, 0) for s in used_states], sum(total.values())])
        out.table(
            f"{c.name} — {KIND_LABELS[b.kind]}",
            [label, *[machine.state_label(s) for s in used_states], "合计"],
            rows,
        )
        for v in views:
            due = v.due_text
            flag = "  ⚠ 已逾期" if v.overdue else ""
            why = f"（⚠ {v.waiting}）" if v.waiting else ""
            notes = "".join(f"；{n}" for n in v.notes)
            out.line(f"  {v.stage.name}：截止 {due}{why}，待办 {v.pending}{flag}{notes}")


@cli.command()
@click.argument("ref")
@click.option(
    "--proofs",
    is_flag=True,
    help="随 --json 导出审计回执：每条事件的包含证明与签名检查点（可用 shenbao audit check-receipt 离线核对）",
)
@json_option
@click.pass_context
@handled
def history(ctx: click.Context, ref: str, proofs: bool, as_json: bool) -> None:
    """案件的完整时间线：每次状态变化、理由说明、拒绝记录，谁、何时、从何到何、为什么。"""
    import json

    from sqlmodel import select

    from models.history import case_history

    rt = _rt(ctx)
    with rt.db.read() as session:
        c = get_case(session, ref)
        events = events_for_case(session, c.id)  # type: ignore[arg-type]
        timeline = case_history(session, c)
        org_names = dict(session.exec(select(Organisation.id, Organisation.name)).all())
    data: list[dict[str, Any]] = [
        {
            "seq": e.seq,
            "at": e.at,
            "actor": e.actor,
            "actor_text": identity.describe(e.actor, org_names),
            "action": e.action,
            "from": e.from_value,
            "to": e.to_value,
            "reason": e.reason,
            "details": json.loads(e.details),
        }
        for e in events
    ]
    if as_json:
        export: dict[str, Any] = {"ref": c.ref, "events": data}
        if proofs:
            from models.checkpoint import KeyProblem
            from operations import checkpoints

            try:
                export["receipt"] = checkpoints.receipt(rt, c.ref)
            except KeyProblem as exc:
                raise Fail(str(exc)) from exc
        out.print_json(export)
        return
    rows = []
    for d, item in zip(data, timeline, strict=True):
        if item.action == "refusal":
            change = f"（{item.from_label}，未变化）"
        elif item.from_label or item.to_label:
            change = f"{item.from_label} → {item.to_label}"
        else:
            change = ""
        rows.append(
            [
                d["seq"],
                format_local(d["at"]),
                d["actor_text"],
                item.action_label,
                item.what,
                change,
                d["reason"],
            ]
        )
    out.table(
        f"{c.ref} {c.title}",
        ["序号", "时间", "操作人", "事件", "操作", "状态", "理由/说明"],
        rows,
        justify_numbers=False,
    )


# -- audit -----------------------------------------------------------------------------------------


@cli.group()
def audit() -> None:
    """审计：校验哈希链与库外锚点，并按事件重放核对案件状态与截止时间；重新锚定。"""


@audit.command("verify")
@click.option("--key", "key", metavar="公钥|文件", help="审计公钥（或公钥文件）；默认本机公钥文件")
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="某人保存的签名检查点（可多次）：日志必须仍包含它，否则即为回滚、改写或两套历史",
)
@json_option
@click.pass_context
@handled
def audit_verify(
    ctx: click.Context, key: str | None, checkpoint_files: tuple[Path, ...], as_json: bool
) -> None:
    """校验审计日志：用公钥核对 Merkle 树与签名检查点（含 --checkpoint 与本机记下的检查点），有密钥时也核对哈希链与库外锚点，并按事件重放核对每个案件的状态与每个环节的截止时间；发现问题时退出码为 1。"""
    from models.checkpoint import KeyProblem
    from operations.checkpoints import verify_log

    rt = _rt(ctx)
    kept = [(f"检查点文件 {p}", p.read_text()) for p in checkpoint_files]
    try:
        report = verify_log(rt, key, kept)
    except KeyProblem as exc:
        raise Fail(str(exc)) from exc
    if as_json:
        out.print_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "head_seq": report.head_seq,
                "root": report.root,
                "hmac_checked": report.hmac_checked,
                "checkpoints": report.checkpoints,
                "latest_checkpoint": report.latest_checkpoint,
                "anchor_seq": report.anchor_seq,
                "anchor_file": report.anchor_file,
                "cases": report.cases,
                "stages": report.stages,
                "stages_unchecked": report.stages_unchecked,
                "problems": [p.__dict__ for p in report.problems],
            }
        )
    elif report.ok:
        chain = (
            f"哈希链完好，库外锚点第 {report.anchor_seq} 条"
            if report.hmac_checked
            else "（本机无审计密钥，哈希链与锚点未核对）"
        )
        signed = (
            f"；{report.checkpoints} 份签名检查点与日志一致（最新 {report.latest_checkpoint} 条）"
            if report.checkpoints
            else "；没有可核对的签名检查点"
        )
        out.line(
            f"审计链完好：共 {report.checked} 条事件，Merkle 树根 {report.root[:16]}…{signed}；{chain}；"
            f"{report.cases} 个案件的状态、{report.stages} 个环节的截止时间与事件一致"
            + (
                f"（{report.stages_unchecked} 个环节加载时未记录截止时间，未核对）"
                if report.stages_unchecked
                else ""
            )
        )
    else:
        out.line(
            f"审计发现 {len(report.problems)} 处问题（共检查 {report.checked} 条事件、{report.cases} 个案件）："
        )
        for p in report.problems:
            out.line(f"  ✗ {f'第 {p.seq} 条 ' if p.seq else ''}[{p.kind}] {p.message}")
    if not report.ok:
        sys.exit(1)


@audit.command("re-anchor")
@click.option("--reason", required=True, help="为何重新锚定（如：锚点文件丢失，已核对最新事件完整）")
@identity_options
@click.pass_context
@handled
def audit_re_anchor(
    ctx: click.Context, reason: str, as_org: str | None, by: str | None, admin_reason: str | None
) -> None:
    """在当前链头重新写入库外锚点（锚点缺失、损坏或恢复备份后）；此操作本身记入审计。"""
    rt = _rt(ctx)
    actor = _actor(rt, as_org, by, admin_reason)
    log = rt.audit()
    try:
        with rt.db.write() as session:
            event = log.re_anchor(session, at=rt.now(), actor=actor.label, reason=reason)
            path = log.anchor_file(session)
    except ValueError as exc:
        raise Fail(str(exc)) from exc
    out.line(f"已在第 {event.seq} 条事件重新锚定：{path}（执行人 {actor.name}，理由：{reason}）")


def _load_extensions() -> None:
    """Commands of the later layers (notifications, service, web) register themselves here."""
    import importlib

    for name in (
        "flows.cli_notify",
        "flows.cli_sync",
        "flows.cli_calendar",
        "flows.demo",
        "flows.cli_service",
        "flows.cli_web",
        "flows.cli_audit",
    ):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Absent layers are fine; a broken import inside a present one is not.
            if not (exc.name and name.startswith(exc.name)):
                raise


def _set_now(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    try:
        parse_instant(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    ctx.ensure_object(dict)["runtime"].now_override = value


def _add_common_options(group: click.Group) -> None:
    """Every command accepts --now, so `shenbao status --now …` works as well as `shenbao --now … status`."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _add_common_options(command)
        elif not any(p.name == "now" for p in command.params):
            command.params.append(
                click.Option(
                    ["--now"],
                    metavar="TIME",
                    expose_value=False,
                    callback=_set_now,
                    help="以指定时间执行（模拟），如 2026-06-20T09:00；也可设 SHENBAO_NOW",
                )
            )


def main() -> None:
    _load_extensions()
    _add_common_options(cli)
    cli(prog_name="shenbao")
