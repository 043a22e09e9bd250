"""``shenbao simulate``: the CLI's entry point in-process, its own SHENBAO_HOME, the clock given.

A roster (杭州市 and two counties) and two cluster applications are imported through the CLI
(the import adds each application's own contact to its county: 赵敏 and 钱进); the simulation
then moves the clock over the application deadline. ``--dry-run`` prints the
timeline and leaves every table (and the audit anchor outside the database) as it was; without
it the emails go over SMTP to a real server on loopback.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import Result

from flows.sample_data import CLUSTER_HEADERS, ROSTER_HEADERS
from models.sheets import write_sheet
from notifications.loopback import LoopbackSMTP
from tests.flows.test_cli import Shenbao

STAGE = "线上申报（申报信息表、实施方案及佐证材料）"


def run(home: Path, *args: str, code: int = 0, **env: str) -> Result:
    """``shenbao`` in-process (the entry point the console script calls), as the province."""
    return Shenbao(home, **env)(*args, now=None, code=code)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Set up once through the CLI; each test gets its own copy of the home directory."""
    tmp_path = tmp_path_factory.mktemp("simulate")
    home = tmp_path / "home"
    roster = write_sheet(
        tmp_path / "名单.csv",
        ROSTER_HEADERS,
        [
            ["杭州市", "产业处", "陈静", "处长", "13905710003", "集群遴选", "chenjing@hz.example"],
            ["西湖区", "经信局产业科", "李娜", "科长", "13905710001", "集群遴选", "lina@xihu.example"],
            ["余杭区", "经信局产业科", "王强", "科长", "13905710002", "集群遴选", "wangqiang@yuhang.example"],
        ],
    )
    cluster = write_sheet(
        tmp_path / "集群申报.csv",
        CLUSTER_HEADERS,
        [
            [
                "西湖区",
                "",
                "协同区",
                "人工智能",
                "智能终端",
                "创新型产业集群",
                "260",
                "1",
                "1",
                "3",
                "赵敏",
                "13905711001",
                "zm@xihu.example",
            ],
            [
                "余杭区",
                "",
                "协同区",
                "人工智能",
                "模型数据服务",
                "创新型产业集群",
                "240",
                "1",
                "1",
                "3",
                "钱进",
                "13905711002",
                "qj@yuhang.example",
            ],
        ],
    )
    run(home, "init", "--now", "2026-05-26T09:00")
    run(
        home,
        "roster",
        "import",
        str(roster),
        "--submit",
        "--as",
        "杭州市",
        "--by",
        "陈静",
        "--now",
        "2026-05-27T10:00",
    )
    run(
        home,
        "case",
        "import",
        str(cluster),
        "--campaign",
        "2026-cluster-selection",
        "--now",
        "2026-06-01T10:00",
    )
    return home


@pytest.fixture
def home(prepared: Path, tmp_path: Path) -> Path:
    # The audit key and anchor live beside the home (``home.keys``): copy them with it.
    shutil.copytree(prepared.parent / f"{prepared.name}.keys", tmp_path / "home.keys")
    return Path(shutil.copytree(prepared, tmp_path / "home"))


def table_counts(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "shenbao.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def anchors(home: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in home.parent.glob(f"{home.name}.keys/audit-anchor-*.json")}


def test_it_prints_the_timeline_and_writes_and_sends_nothing_on_a_dry_run(home: Path) -> None:
    before, anchored = table_counts(home), anchors(home)
    with LoopbackSMTP() as smtp:
        done = run(
            home,
            "simulate",
            "--now",
            "2026-06-17T12:00",
            "--until",
            "2026-06-26T12:00",
            "--dry-run",
            SHENBAO_SMTP_PORT=str(smtp.port),
        )
        received = len(smtp)

    out = done.stdout
    assert (table_counts(home), anchors(home), received) == (before, anchored, 0)
    assert "── 2026-06-18（周四）09:00" in out
    assert (
        f"→ 李娜 <lina@xihu.example>  【提醒】{STAGE}将于2026-06-25（周四）24:00截止，1项待办（还剩4个工作日）"
        in out
    )
    assert "→ 钱进 <qj@yuhang.example>  【提醒】" in out
    assert "── 2026-06-26（周五）00:00\n   逾期关闭：CL26-00001、CL26-00002" in out
    # Each instant once, each email once: 4 county people × 5 reminder steps, the city's reminder
    # the working day before, one lapse email each for the 5 at 00:00 (the city's lists both
    # cases), and the city's d-5wd reminder for its own recommendation on 06-26 09:00.
    assert out.count("── 2026-06-25（周四）08:30") == 1
    assert out.endswith("共 27 封邮件（演练，未写入、未发送）\n")


def test_it_steps_a_fixed_interval_when_asked(home: Path) -> None:
    done = run(
        home,
        "simulate",
        "--now",
        "2026-06-17T12:00",
        "--until",
        "2026-06-19T12:00",
        "--step",
        "1d",
        "--dry-run",
        "--json",
    )
    timeline = json.loads(done.stdout)
    assert [entry["at"] for entry in timeline] == ["2026-06-18T04:00:00+00:00", "2026-06-19T04:00:00+00:00"]
    first = timeline[0]
    assert first["tick"]["written"] == {"reminder": 4}
    assert {e["to"] for e in first["emails"]} == {
        "lina@xihu.example",
        "zm@xihu.example",
        "wangqiang@yuhang.example",
        "qj@yuhang.example",
    }


def test_it_delivers_the_timeline_over_smtp_and_adds_nothing_when_run_again(home: Path) -> None:
    with LoopbackSMTP() as smtp:
        env = {"SHENBAO_SMTP_PORT": str(smtp.port), "SHENBAO_MAIL_FROM": "shenbao@jxt.zj.example"}
        done = run(home, "simulate", "--now", "2026-06-17T12:00", "--until", "2026-06-23T12:00", **env)
        run(
            home,
            "case",
            "act",
            "CL26-00002",
            "submit",
            "--as",
            "余杭区",
            "--by",
            "王强",
            "--now",
            "2026-06-23T15:00",
        )
        run(home, "simulate", "--now", "2026-06-23T15:00", "--until", "2026-06-26T12:00", **env)
        first = [(m.rcpt_tos[0], smtp.decoded(i)["Subject"]) for i, m in enumerate(smtp.messages)]
        after_first = table_counts(home)
        # The same period again, from the start: every tick finds its rows already written.
        run(home, "simulate", "--now", "2026-06-17T12:00", "--until", "2026-06-26T12:00", **env)
        again = len(smtp)
        ids = smtp.message_ids()

    assert again == len(first) and len(set(ids)) == len(ids)
    assert table_counts(home) == after_first
    to_lina = [s for to, s in first if to == "lina@xihu.example"]
    assert to_lina[0] == f"【提醒】{STAGE}将于2026-06-25（周四）24:00截止，1项待办（还剩4个工作日）"
    assert [s for s in to_lina if s.startswith("【今日截止】")] == [
        f"【今日截止】{STAGE}将于2026-06-25（周四）24:00截止，1项待办"
    ] * 2  # 08:30 and 18:00
    assert any(s.startswith("【通知】CL26-00001") and "逾期" in s for s in to_lina)
    assert (
        len([s for to, s in first if to == "wangqiang@yuhang.example"]) == 2
    )  # d-7 and d-3wd, then he submits
    assert [s for to, s in first if to == "chenjing@hz.example"] == [
        "【通知】CL26-00002 余杭区：提交申报（已提交待市级审核）",  # the city hears its counties submit
        f"【提醒】{STAGE}将于2026-06-25（周四）24:00截止，1个单位尚未办理",
        "【通知】CL26-00001 西湖区：逾期关闭（逾期未提交）",
        "【提醒】设区市审核推荐并上传推荐函（签章版）将于2026-07-03（周五）24:00截止，1项待办（还剩5个工作日）",
    ]
    assert "新邮件" in done.stderr  # progress goes to stderr, the timeline to stdout


def test_it_refuses_an_end_before_the_start(home: Path) -> None:
    done = run(home, "simulate", "--now", "2026-06-17T12:00", "--until", "2026-06-01", code=2)
    assert "应晚于当前时间" in done.stderr + done.stdout
