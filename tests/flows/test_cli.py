"""The ``shenbao`` command line, as coordinators and operators use it.

The tests drive ``flows.cli.cli`` in-process with click's CliRunner, the entry point the console
script calls (``main`` adds nothing but the extensions loaded here); one runs the real console
script in a subprocess (``--help``), for the installed entry point itself. A subprocess costs
about 2 s of CPU to import the CLI: the suite's budget has no room for one per test. Every test
has its own SHENBAO_HOME and passes the time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from flows import cli as cli_module
from models.sheets import write_sheet
from tests.fixtures.scenario.make_samples import CLUSTER_HEADERS
from tests.flows.conftest import checkpoint_wal, copy_home, keys_of

SCENARIO = Path(__file__).resolve().parents[1] / "fixtures" / "scenario"
SHENBAO = Path(sys.executable).parent / "shenbao"
NOW = "2026-06-01T10:00"
AFTER = "2026-06-26T00:00"

cli_module._load_extensions()
cli_module._add_common_options(cli_module.cli)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHENBAO_")}
    return env | {"SHENBAO_HOME": str(home), "COLUMNS": "200", "SHENBAO_ACTOR": "省经信厅/祝博艺"} | extra


class Shenbao:
    """``shenbao`` with its own home directory, in-process."""

    def __init__(self, home: Path, **env: str | None) -> None:
        self.home = home
        # The province's coordinator unless a test says otherwise (SHENBAO_ACTOR="" for nobody).
        self.env = {
            "SHENBAO_HOME": str(home),
            "SHENBAO_NOW": None,
            "SHENBAO_DATABASE_URL": None,
            "SHENBAO_ACTOR": "省经信厅/祝博艺",
        } | env

    def __call__(self, *args: str, now: str | None = NOW, code: int = 0) -> Result:
        argv = (["--now", now] if now else []) + list(args)
        # Tables are sized at import from COLUMNS; make them wide enough that no cell folds.
        cli_module.out.console.width = cli_module.out.err_console.width = 400
        # As in a clean shell: no SHENBAO_* setting of the test process's own reaches the command.
        env = {k: None for k in os.environ if k.startswith("SHENBAO_")} | self.env
        result = CliRunner().invoke(cli_module.cli, argv, env=env, catch_exceptions=False)
        assert result.exit_code == code, (argv, result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str, now: str | None = NOW) -> Any:
        return json.loads(self(*args, "--json", now=now).stdout)


def run_script(home: Path, *args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(SHENBAO), *args],
        env=clean_env(home, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    return done


@pytest.fixture
def sb(tmp_path: Path, initialised_home: Path) -> Shenbao:
    """``shenbao`` on a home as ``shenbao init`` leaves it (a copy of the session's)."""
    copy_home(initialised_home, tmp_path / "home")
    return Shenbao(tmp_path / "home")


@pytest.fixture(scope="session")
def hangzhou_home(
    initialised_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """An initialised home after `case import` of 杭州市's applications, and their refs by title:
    imported once per session (0.25 s a test before), copied per test by `cases`."""
    home = tmp_path_factory.mktemp("hangzhou") / "home"
    copy_home(initialised_home, home)
    sb = Shenbao(home)
    sb("case", "import", str(SCENARIO / "cluster_hangzhou.csv"), "--campaign", "2026-cluster-selection")
    listed = sb.json("case", "list", "--campaign", "2026-cluster-selection", "--kind", "cluster_application")
    checkpoint_wal(home / "shenbao.db")
    return home, {c["title"]: c["ref"] for c in listed}


@pytest.fixture
def cases(sb: Shenbao, hangzhou_home: tuple[Path, dict[str, str]]) -> dict[str, str]:
    """杭州市's applications imported into the test's home (a copy of `hangzhou_home`)."""
    template, refs = hangzhou_home
    # `sb` holds a copy of the initialised home that no command has opened yet: replace it.
    shutil.rmtree(sb.home)
    shutil.rmtree(keys_of(sb.home))
    copy_home(template, sb.home)
    return dict(refs)


# -- help ------------------------------------------------------------------------------------------


def test_it_explains_itself_with_help(tmp_path: Path) -> None:
    done = run_script(tmp_path, "--help")
    assert "申报 shenbao" in done.stdout and "SHENBAO_DATABASE_URL" in done.stdout
    for name in ("init", "campaign", "roster", "case", "status", "history", "audit"):
        assert name in done.stdout


def _commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize(
    ("path", "command"),
    list(_commands(cli_module.cli)),
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_it_explains_every_command_with_help(
    tmp_path: Path, path: tuple[str, ...], command: click.Command
) -> None:
    result = Shenbao(tmp_path)(*path, "--help", now=None)
    purpose = (command.help or "").strip().splitlines()[0]
    assert purpose and purpose[:12] in " ".join(result.stdout.split())


# -- init and campaigns ------------------------------------------------------------------------------


def test_it_initialises_twice_without_changing_anything_the_second_time(tmp_path: Path) -> None:
    sb = Shenbao(tmp_path)
    first = sb.json("init")
    assert first["divisions_added"] == 102 and first["schema_from"] is None
    assert first["campaigns"]["2026-cluster-selection"] == ["新建批次", "新建市级案件 22 个"]
    second = sb.json("init")
    assert second["divisions_added"] == 0 and second["schema_from"] == second["schema_to"]
    assert second["campaigns"] == {"2026-cluster-selection": [], "2026-jingpin": []}
    # The key sits beside the data directory, not in it: a copy of the database does not carry it.
    assert not (tmp_path / "audit.key").exists()
    assert (tmp_path.parent / f"{tmp_path.name}.keys" / "audit.key").stat().st_mode & 0o077 == 0
    sb("audit", "verify")


def test_it_lists_a_campaigns_form_with_its_choices_by_label(sb: Shenbao) -> None:
    out = sb("campaign", "form", "2026-cluster-selection").stdout
    assert "申报类型" in out and "核心区、协同区、“新星”产业群" in out and "亿元、亿" in out
    # 产业高地 shares the 集群名称 column: it is not a column of its own.
    keys = [f["key"] for f in sb.json("campaign", "form", "2026-cluster-selection")["fields"]]
    assert "cluster" in keys and "highland" not in keys
    jp = sb.json("campaign", "form", "2026-jingpin")
    category = next(f for f in jp["fields"] if f["key"] == "category")
    assert category["choices"] == ["先进制造类", "数字技术融合类", "特色（消费品）类"]


def test_it_shows_a_campaigns_stages_with_weekday_and_24_00(sb: Shenbao) -> None:
    out = sb("campaign", "show", "2026-cluster-selection").stdout
    assert (
        "2026-06-25（周四）24:00" in out
        and "2026-06-05（周五）24:00" in out
        and "2026-07-03（周五）24:00" in out
    )
    assert "另行通知" in out and "现场答辩" in out and "严梦玲" in out
    jp = sb.json("campaign", "show", "2026-jingpin")
    assert [s["stage"] for s in jp["stages"]] == [
        "roster",
        "application",
        "local_review",
        "city_recommendation",
        "review",
    ]
    assert jp["stages"][1]["due_at"] == "2026-07-10T16:00:00+00:00"


def test_it_lists_the_loaded_campaigns(sb: Shenbao) -> None:
    listed = sb.json("campaign", "list")
    assert [(c["id"], c["program"], c["program_name"]) for c in listed] == [
        ("2026-cluster-selection", "cluster", "集群遴选"),
        ("2026-jingpin", "jingpin", "制造精品"),
    ]


def test_show_and_form_list_the_official_forms_the_campaign_file_declares(sb: Shenbao) -> None:
    exports = sb.json("campaign", "show", "2026-jingpin")["exports"]
    assert [(e["form"], e["annex"], e["title"]) for e in exports] == [
        ("recommendation_summary", "附2-3", "2026年浙江制造精品推荐汇总表"),
        ("roster", "附件3", "工作人员信息汇总表"),
    ]
    assert exports[1]["columns"][-1] == {"header": "备注(集群遴选/制造精品)", "field": "program"}
    assert sb.json("campaign", "form", "2026-jingpin")["exports"] == exports
    # The cluster campaign recommends by a sealed letter: its file declares the staff form only.
    out = sb("campaign", "show", "2026-cluster-selection").stdout
    assert "附件3 工作人员信息汇总表（工作人员表）：市、县(市、区) | 处室/科室" in out
    assert "推荐汇总表" not in out
    form = sb("campaign", "form", "2026-jingpin").stdout
    assert "附2-3 2026年浙江制造精品推荐汇总表（推荐汇总表）：序号 | 企业名称" in form
    assert "roster import" in form


def test_it_reports_a_broken_campaign_file_naming_the_field(sb: Shenbao, tmp_path: Path) -> None:
    text = (Path(cli_module.__file__).parents[1] / "calendars/campaigns/2026-jingpin.yaml").read_text(
        encoding="utf-8"
    )
    bad = tmp_path / "2026-jingpin.yaml"
    bad.write_text(text.replace("deadline: 2026-07-10", 'deadline: "2026-07-32"'), encoding="utf-8")
    result = sb("campaign", "load", str(bad), code=2)
    assert "stages[application].deadline" in result.stderr and str(bad) in result.stderr


def test_it_announces_a_deadline_and_shows_its_version(sb: Shenbao) -> None:
    sb("deadline", "set", "2026-cluster-selection", "defence", "2026-08-15 17:00", "--reason", "答辩通知")
    out = sb("campaign", "show", "2026-cluster-selection").stdout
    assert "2026-08-15（周六）17:00（第2版）" in out


# -- imports -----------------------------------------------------------------------------------------


def test_it_imports_a_roster_and_marks_the_task_submitted(sb: Shenbao) -> None:
    city = ("--as", "杭州市", "--by", "王明")
    out = sb("roster", "import", str(SCENARIO / "roster_hangzhou.xlsx"), "--submit", *city).stdout
    assert "4 行，新增联系人 4 人" in out and "杭州市工作人员信息汇总表" in out
    people = sb.json("roster", "list", "--city", "杭州市", "--program", "jingpin")
    assert {p["name"] for p in people} == {"李华", "赵静"}
    # The programs are the loaded files': by id or by the name people use, an unknown one named.
    assert sb.json("roster", "list", "--city", "杭州市", "--program", "制造精品") == people
    refused = sb("roster", "list", "--program", "zjtx", code=2).output
    assert "没有工作类别「zjtx」" in refused and "jingpin（制造精品）" in refused
    assert sb.json("case", "show", "RS26-CL-330100")["state"] == "submitted"


def test_a_directory_import_loads_people_and_submits_no_roster(sb: Shenbao) -> None:
    out = sb(
        "contacts", "import", str(SCENARIO / "roster_hangzhou.xlsx"), "--source", "省厅通讯录 2026-05-26"
    ).stdout
    assert "4 行，新增联系人 4 人" in out
    people = sb.json("roster", "list", "--city", "杭州市")
    assert {p["source"] for p in people} == {"省厅通讯录 2026-05-26"}
    assert sb.json("case", "show", "RS26-CL-330100")["state"] == "pending"


def test_a_province_person_submitting_a_citys_roster_is_told_to_use_admin(sb: Shenbao) -> None:
    refused = sb("roster", "import", str(SCENARIO / "roster_hangzhou.xlsx"), "--submit", code=3)
    assert "--admin" in refused.stderr
    assert sb.json("case", "show", "RS26-CL-330100")["state"] == "pending"
    assert sb.json("roster", "list", "--city", "杭州市") == []


def test_it_imports_applications(sb: Shenbao, cases: dict[str, str]) -> None:
    assert len(cases) == 11 and cases["西湖区"] == "CL26-00001"


def test_it_exits_2_naming_row_and_column_of_a_bad_import(sb: Shenbao, tmp_path: Path) -> None:
    good = [
        "鄞州区",
        "",
        "协同区",
        "人工智能",
        "智能终端",
        "创新型产业集群",
        260,
        1,
        1,
        3,
        "否",
        "周敏",
        "13600000002",
        "zm@yz.gov.cn",
        "",
    ]
    bad = [*good[:4], "算力基础设施", *good[5:12], "136-no", *good[13:]]
    path = write_sheet(tmp_path / "申报.csv", CLUSTER_HEADERS, [good, bad])
    result = sb("case", "import", str(path), "--campaign", "2026-cluster-selection", code=2)
    assert "申报.csv 第3行 「联系人手机」" in result.stderr and "整个文件未导入" in result.stderr
    assert sb.json("case", "list", "--kind", "cluster_application") == []


def test_it_adds_one_application_from_fields(sb: Shenbao) -> None:
    fields = {
        "申报单位": "海曙区",
        "申报类型": "协同区",
        "集群名称": "人工智能",
        "细分赛道": "智能终端",
        "当前所属X体系": "创新型产业集群",
        "2025年集群规上企业营业收入（亿元）": "210",
        "省级及以上链主企业数量": "0",
        "省级及以上创新平台数量": "0",
        "省级及以上企业研发机构数量": "1",
        "集群联系人": "张三",
        "联系人手机": "13800000000",
    }
    args = [x for k, v in fields.items() for x in ("--field", f"{k}={v}")]
    assert "已新增 CL26-00001" in sb("case", "add", "--campaign", "2026-cluster-selection", *args).stdout


# -- acting --------------------------------------------------------------------------------------------


def test_it_acts_on_a_case_and_shows_the_new_state(sb: Shenbao, cases: dict[str, str]) -> None:
    out = sb("case", "act", cases["西湖区"], "submit", "--as", "西湖区", "--by", "赵静").stdout
    assert "已提交待市级审核" in out
    shown = sb.json("case", "show", cases["西湖区"])
    assert shown["state"] == "submitted" and {a["action"] for a in shown["allowed_actions"]} >= {
        "recommend",
        "return",
    }


def test_it_exits_3_with_the_reason_when_an_action_is_refused(sb: Shenbao, cases: dict[str, str]) -> None:
    result = sb("case", "act", cases["桐庐县"], "submit", "--as", "桐庐县", "--by", "周敏", now=AFTER, code=3)
    assert "操作被拒绝" in result.stderr and "2026-06-25（周四）24:00" in result.stderr
    assert sb.json("case", "show", cases["桐庐县"])["state"] == "draft"


def test_it_refuses_another_citys_coordinator(sb: Shenbao, cases: dict[str, str]) -> None:
    sb("case", "act", cases["西湖区"], "submit", "--as", "西湖区", "--by", "赵静")
    result = sb("case", "act", cases["西湖区"], "recommend", "--as", "宁波市", "--by", "孙立", code=3)
    assert "宁波市无权处理案件" in result.stderr


def test_it_takes_an_override_reason_and_records_it(sb: Shenbao, cases: dict[str, str]) -> None:
    park = cases["杭州未来科技城管委会"]
    county = ("--as", "余杭区", "--by", "王强")  # the park's county submits for it
    # Before submitting, `case show` previews what the campaign file's rules will say.
    draft = sb.json("case", "show", park)
    assert draft["findings_are_preview"] and [f["rule"] for f in draft["findings"]] == ["revenue_threshold"]
    refused = sb("case", "act", park, "submit", *county, code=3)
    assert "revenue_threshold" in refused.stderr and "--override" in refused.stderr
    sb("case", "act", park, "submit", *county, "--override", "revenue_threshold=软件业增速快")
    show = sb("case", "show", park).stdout
    assert "已说明理由：软件业增速快" in show
    history = sb.json("history", park)["events"]
    assert [e["action"] for e in history] == ["create", "refusal", "state_change", "override"]
    assert history[-1]["reason"] == "软件业增速快"


def test_it_rejects_an_override_without_a_reason(sb: Shenbao, cases: dict[str, str]) -> None:
    result = sb(
        "case", "act", cases["杭州未来科技城管委会"], "submit", "--override", "revenue_threshold=", code=2
    )
    assert "理由不能为空" in result.stderr


def test_it_schedules_a_defence_at_a_given_time(sb: Shenbao, cases: dict[str, str]) -> None:
    ref = cases["西湖区"]
    sb("case", "act", ref, "submit", "--as", "西湖区", "--by", "赵静")
    sb("case", "act", ref, "recommend", "--as", "杭州市", "--by", "陈静")
    sb("case", "act", ref, "pass_preliminary", "--as", "浙江省", "--by", "祝博艺", now="2026-07-20T10:00")
    sb("case", "act", ref, "schedule_defence", "--at", "2026-08-10T09:00", now="2026-07-20T10:00")
    assert "现场答辩：2026-08-10（周一）09:00" in sb("case", "show", ref).stdout


def test_it_submits_a_recommendation_with_its_letter(sb: Shenbao, cases: dict[str, str]) -> None:
    sb("case", "act", cases["富阳区"], "submit", "--as", "富阳区", "--by", "李娜")
    rc, city = "RC26-CL-330100", ("--as", "杭州市", "--by", "陈静")
    assert "推荐函" in sb("case", "act", rc, "submit", *city, code=3).stderr
    scan = sb.home.parent / "杭经信〔2026〕12号.pdf"
    scan.write_bytes(b"%PDF-1.4 sealed")
    sb("case", "act", rc, "submit", *city, "--letter", str(scan))
    assert sb.json("case", "show", rc)["letter"] == "杭经信〔2026〕12号.pdf"
    assert sb.json("case", "show", cases["富阳区"])["state"] == "not_recommended"
    assert (
        sb.home / "letters" / hashlib.sha256(b"%PDF-1.4 sealed").hexdigest()
    ).read_bytes() == scan.read_bytes()


def test_it_takes_a_letter_only_as_a_real_file_and_keeps_none_when_refused(
    sb: Shenbao, cases: dict[str, str], tmp_path: Path
) -> None:
    rc = "RC26-CL-330100"
    missing = sb("case", "act", rc, "attach", "--as", "杭州市", "--letter", "杭经信〔2026〕12号.pdf", code=2)
    assert "杭经信〔2026〕12号.pdf" in missing.stderr and "does not exist" in missing.stderr
    fake = tmp_path / "推荐函.pdf"
    fake.write_bytes(b"<html>not a scan</html>")
    assert (
        "内容不是 PDF 文件"
        in sb("case", "act", rc, "attach", "--as", "杭州市", "--letter", str(fake), code=2).stderr
    )
    fake.write_bytes(b"%PDF-1.4 sealed")
    refused = sb("case", "act", rc, "attach", "--as", "宁波市", "--letter", str(fake), code=3)
    assert "操作被拒绝" in refused.stderr
    assert not any(p.is_file() for p in (sb.home / "letters").rglob("*"))
    assert sb.json("case", "show", rc)["letter"] is None


def test_it_names_an_unknown_case(sb: Shenbao) -> None:
    assert "找不到案件：CL26-99999" in sb("case", "show", "CL26-99999", code=2).stderr


# -- reading ---------------------------------------------------------------------------------------------


def test_it_reports_status_as_json(sb: Shenbao, cases: dict[str, str]) -> None:
    sb("case", "act", cases["西湖区"], "submit", "--as", "西湖区", "--by", "赵静")
    [report] = sb.json("status", "--campaign", "2026-cluster-selection")
    assert report["campaign"] == "2026-cluster-selection" and report["now"] == "2026-06-01T02:00:00+00:00"
    board = report["board"]
    assert (board["kind"], board["group_by"]) == ("cluster_application", "city")
    assert board["states"][:3] == ["draft", "submitted", "returned"]
    hz = next(r for r in board["rows"] if r["code"] == "330100")
    assert (hz["name"], hz["counts"], hz["total"]) == ("杭州市", {"draft": 10, "submitted": 1}, 11)
    assert len(board["rows"]) == 11 and board["total"] == {"draft": 10, "submitted": 1}
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["application"]["pending"] == 10 and stages["application"]["overdue"] is False
    assert stages["defence"]["due_at"] is None


def test_it_refuses_an_action_recorded_before_the_cases_latest_event(
    sb: Shenbao, cases: dict[str, str]
) -> None:
    ref = cases["西湖区"]
    sb("case", "act", ref, "submit", "--as", "西湖区", "--by", "赵静", now="2026-06-10T10:00")
    refused = sb(
        "case", "act", ref, "withdraw", "--reason", "补录", "--as", "西湖区", "--by", "赵静",
        now="2026-06-09T10:00", code=3,
    )  # fmt: skip
    assert "最近一条记录在 2026-06-10（周三）10:00，不能把操作记在它之前" in refused.stderr + refused.stdout
    assert "已提交" in sb("case", "show", ref).stdout


def test_it_breaks_status_down_by_county(sb: Shenbao, cases: dict[str, str]) -> None:
    [report] = sb.json("status", "--campaign", "2026-cluster-selection", "--city", "杭州市")
    assert report["board"]["group_by"] == "county"
    assert {r["name"] for r in report["board"]["rows"] if r["total"]} >= {"西湖区", "淳安县", "余杭区"}


def test_it_prints_a_case_history_with_refusals(sb: Shenbao, cases: dict[str, str]) -> None:
    sb("case", "act", cases["桐庐县"], "submit", "--as", "桐庐县", "--by", "周敏", now=AFTER, code=3)
    out = sb("history", cases["桐庐县"]).stdout
    assert "被拒绝" in out and "2026-06-25（周四）24:00" in out and "新建" in out


# -- the clock ------------------------------------------------------------------------------------------


def test_it_takes_now_from_the_option_after_the_subcommand(sb: Shenbao) -> None:
    result = sb("campaign", "show", "2026-cluster-selection", "--json", "--now", "2026-06-20T09:00", now=None)
    assert json.loads(result.stdout)["now"] == "2026-06-20T01:00:00+00:00"


def test_it_takes_now_from_shenbao_now(sb: Shenbao) -> None:
    shown = Shenbao(sb.home, SHENBAO_NOW="2026-06-26T08:00").json(
        "campaign", "show", "2026-cluster-selection", now=None
    )
    assert shown["now"] == "2026-06-26T00:00:00+00:00"
    assert {s["stage"]: s["working_days_left"] for s in shown["stages"]}["application"] < 0


def test_it_rejects_a_malformed_now(sb: Shenbao) -> None:
    assert "--now" in sb("status", now="2026-06-31T09:00", code=2).stderr


# -- the audit -------------------------------------------------------------------------------------------


def test_it_verifies_the_audit_and_exits_1_after_the_sqlite_file_is_tampered_with(sb: Shenbao) -> None:
    sb("case", "import", str(SCENARIO / "cluster_hangzhou.csv"), "--campaign", "2026-cluster-selection")
    sb("case", "act", "CL26-00001", "submit", "--as", "西湖区", "--by", "赵静")
    assert "审计链完好" in sb("audit", "verify").stdout
    with sqlite3.connect(sb.home / "shenbao.db") as conn:
        seq = conn.execute("SELECT max(seq) FROM audit_event WHERE action = 'state_change'").fetchone()[0]
        conn.execute("UPDATE audit_event SET actor = 'someone-else' WHERE seq = ?", (seq,))
    report = json.loads(sb("audit", "verify", "--json", code=1).stdout)
    assert report["ok"] is False and [(p["seq"], p["kind"]) for p in report["problems"]] == [(seq, "changed")]


def test_it_runs_on_postgresql_from_shenbao_database_url(tmp_path: Path, fresh_pg_url: str) -> None:
    sb = Shenbao(tmp_path, SHENBAO_DATABASE_URL=fresh_pg_url)
    first = Shenbao(tmp_path, SHENBAO_DATABASE_URL=fresh_pg_url, SHENBAO_NOW=NOW).json("init", now=None)
    assert first["database"].startswith("postgresql") and first["divisions_added"] == 102
    sb("case", "import", str(SCENARIO / "cluster_hangzhou.csv"), "--campaign", "2026-cluster-selection")
    sb("case", "act", "CL26-00001", "submit", "--as", "西湖区", "--by", "赵静")
    assert sb.json("case", "show", "CL26-00001")["state"] == "submitted"
    assert sb.json("audit", "verify")["ok"] is True


def test_it_prints_a_reason_as_typed_never_as_markup_or_terminal_codes(
    sb: Shenbao, cases: dict[str, str]
) -> None:
    ref = cases["西湖区"]
    sb("case", "act", ref, "submit", "--as", "西湖区", "--by", "赵静")
    reason = "[/]\x1b[31m红[bold]\x9b2J\u202e"
    sb("case", "act", ref, "return", "--as", "杭州市", "--reason", reason)
    done = sb("history", ref)
    assert "[/]␛[31m红[bold]\\x9b2J\\u202e" in done.stdout
    assert not any(ch in done.stdout for ch in "\x1b\x9b\u202e")
    listed = sb("case", "list", "--campaign", "2026-cluster-selection")
    assert "\x1b" not in listed.stdout


def test_it_still_reports_a_truncation_after_the_anchor_is_deleted_and_a_write_follows(
    sb: Shenbao,
) -> None:
    sb("case", "import", str(SCENARIO / "cluster_hangzhou.csv"), "--campaign", "2026-cluster-selection")
    for ref in ("CL26-00001", "CL26-00002", "CL26-00003"):
        sb("case", "act", ref, "submit", "--by", "祝博艺", "--admin", "测试补录")
    (anchor,) = keys_of(sb.home).glob("audit-anchor-*.json")
    # The intruder: drop the newest five events, point the head at what is left, remove the anchor.
    anchor.unlink()
    with sqlite3.connect(sb.home / "shenbao.db") as conn:
        top = conn.execute("SELECT max(seq) FROM audit_event").fetchone()[0]
        conn.execute("DELETE FROM audit_event WHERE seq > ?", (top - 5,))
        seq, digest = conn.execute("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1").fetchone()
        conn.execute("UPDATE audit_head SET seq = ?, hash = ?", (seq, digest))
    sb("deadline", "set", "2026-cluster-selection", "defence", "2026-08-15 17:00", "--reason", "答辩通知")
    report = json.loads(sb("audit", "verify", "--json", code=1).stdout)
    assert "anchor_missing" in {p["kind"] for p in report["problems"]}
    assert not list(keys_of(sb.home).glob("audit-anchor-*.json"))


def test_it_exits_1_naming_a_case_whose_state_was_set_without_an_event(sb: Shenbao) -> None:
    sb("case", "import", str(SCENARIO / "cluster_hangzhou.csv"), "--campaign", "2026-cluster-selection")
    sb("case", "act", "CL26-00002", "submit", "--by", "祝博艺", "--admin", "测试补录")
    with sqlite3.connect(sb.home / "shenbao.db") as conn:
        conn.execute("UPDATE \"case\" SET state = 'selected' WHERE ref = 'CL26-00002'")
    report = json.loads(sb("audit", "verify", "--json", code=1).stdout)
    assert [(p["kind"], p["subject"]) for p in report["problems"]] == [("state", "case:CL26-00002")]
    text = sb("audit", "verify", code=1).stdout
    assert "CL26-00002" in text and "selected" in text and "已提交待市级审核" in text


def test_it_re_anchors_through_the_cli_and_records_who_and_why(sb: Shenbao) -> None:
    (anchor,) = keys_of(sb.home).glob("audit-anchor-*.json")
    anchor.unlink()
    assert "anchor_missing" in sb("audit", "verify", code=1).stdout
    sb("audit", "re-anchor", "--by", "王敏", code=2)  # no reason: nothing written
    assert not anchor.exists()
    done = sb("audit", "re-anchor", "--reason", "锚点文件误删，已核对", "--by", "王敏").stdout
    assert "重新锚定" in done and anchor.exists()
    assert sb.json("audit", "verify")["ok"] is True


def test_it_finds_the_same_anchor_under_another_spelling_of_the_postgresql_url(
    tmp_path: Path, fresh_pg_url: str
) -> None:
    other = fresh_pg_url.replace("postgres@127.0.0.1", "postgres:rotated@localhost")
    assert other != fresh_pg_url
    first = Shenbao(tmp_path, SHENBAO_DATABASE_URL=fresh_pg_url)
    letter = tmp_path / "函.pdf"
    letter.write_bytes(b"%PDF-1.4 sealed")
    first("init")
    first("case", "act", "RC26-CL-330100", "attach", "--as", "杭州市", "--letter", str(letter))
    (anchor,) = keys_of(tmp_path).glob("audit-anchor-*.json")
    again = Shenbao(tmp_path, SHENBAO_DATABASE_URL=other)
    again("init")  # an existing database keeps its identity
    again("case", "act", "RC26-CL-330200", "attach", "--as", "宁波市", "--letter", str(letter))
    assert list(keys_of(tmp_path).glob("audit-anchor-*.json")) == [anchor]
    report = again.json("audit", "verify")
    assert report["ok"] is True and report["anchor_seq"] == report["head_seq"]
    assert report["anchor_file"] == str(anchor) and "rotated" not in anchor.name


# -- who acts ---------------------------------------------------------------------------------------


def test_it_refuses_to_act_without_an_identity_and_says_how_to_give_one(
    sb: Shenbao, cases: dict[str, str]
) -> None:
    nobody = Shenbao(sb.home, SHENBAO_ACTOR="")
    result = nobody("case", "act", cases["西湖区"], "submit", "--json", code=2)
    assert "--as" in result.stderr and "SHENBAO_ACTOR" in result.stderr
    assert sb.json("case", "show", cases["西湖区"])["state"] == "draft"
    bad = Shenbao(sb.home, SHENBAO_ACTOR="张伟")("case", "act", cases["西湖区"], "submit", code=2)
    assert "SHENBAO_ACTOR 应为「单位/姓名」" in bad.stderr


def test_history_shows_the_person_and_organisation_and_admin_mode_on_record(
    sb: Shenbao, cases: dict[str, str]
) -> None:
    ref = cases["西湖区"]
    sb("case", "act", ref, "submit", "--as", "西湖区", "--by", "赵静")
    sb("case", "act", ref, "return", "--by", "张伟", "--admin", "市局委托退回", "--reason", "材料不全")
    out = sb("history", ref).stdout
    assert "赵静（西湖区）" in out and "张伟（管理员）" in out and "cli:" not in out
    last = sb.json("history", ref)["events"][-1]
    assert last["actor"] == "admin:张伟" and last["details"]["admin_reason"] == "市局委托退回"


def test_nobody_lapses_a_draft_from_the_command_line(sb: Shenbao, cases: dict[str, str]) -> None:
    result = sb(
        "case", "act", cases["西湖区"], "lapse", "--by", "张伟", "--admin", "提前关闭", "--json", code=3
    )
    failure = json.loads(result.stdout)
    assert failure["rule"] == "system_only" and failure["data"] == {"action": "lapse"}
    assert sb.json("case", "show", cases["西湖区"])["state"] == "draft"


def test_an_unexpected_error_exits_70_not_1(tmp_path: Path) -> None:
    @click.command()
    @cli_module.handled
    def broken() -> None:
        raise ZeroDivisionError("bug")

    result = CliRunner().invoke(broken, [])
    assert result.exit_code == cli_module.EXIT_INTERNAL == 70
    assert "内部错误（ZeroDivisionError" in result.stderr and "Traceback" in result.stderr


def test_it_warns_once_when_the_audit_key_sits_beside_the_database(tmp_path: Path) -> None:
    beside = Shenbao(tmp_path, SHENBAO_AUDIT_KEY_FILE=str(tmp_path / "audit.key"))("init")
    assert beside.stderr.count("警告：审计密钥/锚点与 SQLite 数据库在同一目录") == 1
    assert str(tmp_path / "audit.key") in beside.stderr
    elsewhere = Shenbao(tmp_path / "other")("init")
    assert "警告" not in elsewhere.stderr


def test_init_brings_a_campaign_stored_by_an_earlier_release_up_to_the_new_format(
    tmp_path: Path, initialised_home: Path
) -> None:
    """A database from before the 2026 figures became tables:/eligibility:/form: keeps its files'
    old text, which this release cannot read: every command says how to bring it up to date,
    and `init` reloads the built-in file over it (audited), keeping the deadlines in force."""
    import sqlite3

    from calendars.campaign import spec_digest
    from tests.flows.conftest import copy_home

    home = tmp_path / "home"
    copy_home(initialised_home, home)
    old = (Path(__file__).parents[1] / "fixtures" / "2026-cluster-selection.fbab442.yaml").read_text(
        encoding="utf-8"
    )
    with sqlite3.connect(home / "shenbao.db") as conn:  # as the earlier release stored it
        conn.execute(
            "UPDATE campaign SET spec_text = ?, spec_digest = ? WHERE id = '2026-cluster-selection'",
            (old, spec_digest(old)),
        )
    sb = Shenbao(home)
    refused = sb("campaign", "show", "2026-cluster-selection", code=2)
    assert "旧版本格式" in refused.output and "shenbao init" in refused.output
    upgraded = sb.json("init")
    assert upgraded["campaigns"]["2026-cluster-selection"][0].startswith("批次文件格式升级")
    shown = sb("campaign", "show", "2026-cluster-selection").output
    assert "2026-06-25（周四）24:00" in shown
    assert sb.json("init")["campaigns"]["2026-cluster-selection"] == []
