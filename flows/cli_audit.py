"""``shenbao audit keygen | rotate-key | checkpoint | receipt | check-receipt | prove``: the signed
audit log at the command line (``audit verify`` and ``re-anchor`` are in flows/cli.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from calendars.timeutil import format_local, parse_instant
from flows import output as out
from flows.cli import Fail, _actor, _rt, audit, handled, identity_options
from models.checkpoint import CheckpointInvalid, KeyProblem
from models.merkle import ProofError
from operations import checkpoints as ops

EXIT_AUDIT_PROBLEM = 1


@audit.command("keygen")
@click.option("--name", help="密钥名称（默认 shenbao-audit-年月日；不能含空格或“+”）")
@click.pass_context
@handled
def audit_keygen(ctx: click.Context, name: str | None) -> None:
    """生成签署审计检查点的 Ed25519 密钥：私钥写入库外文件（权限 0600），公钥加入公钥文件并显示，分发给校验者。"""
    rt = _rt(ctx)
    try:
        key = ops.keygen(rt, name)
    except KeyProblem as exc:
        raise Fail(str(exc)) from exc
    out.line(f"私钥：{rt.settings.resolved_signing_key_file}（权限 0600，不要放进数据库备份）")
    out.line(f"公钥文件：{rt.settings.resolved_keyring_file}")
    out.line(f"公钥（交给审计联系人与校验者）：{key.text}")


@audit.command("rotate-key")
@click.option("--reason", required=True, help="更换理由（记入审计）")
@click.option("--name", help="新密钥名称（默认 shenbao-audit-年月日）")
@identity_options
@click.pass_context
@handled
def audit_rotate_key(
    ctx: click.Context,
    reason: str,
    name: str | None,
    as_org: str | None,
    by: str | None,
    admin_reason: str | None,
) -> None:
    """更换签名密钥：旧公钥保留在公钥文件中（旧检查点仍可校验），更换记入审计，并由新旧两把密钥共同签署一份检查点。"""
    rt = _rt(ctx)
    actor = _actor(rt, as_org, by, admin_reason)
    try:
        old, new, cross = ops.rotate_key(rt, actor, reason, name)
    except KeyProblem as exc:
        raise Fail(str(exc)) from exc
    out.line(f"已更换签名密钥：{old.label} → {new.label}（执行人 {actor.name}，理由：{reason}）")
    out.line(f"新公钥：{new.text}")
    out.line(f"由新旧密钥共同签署的检查点（{cross.size} 条事件）：")
    sys.stdout.write(cross.note)


@audit.command("checkpoint")
@click.option(
    "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="写入文件（默认显示）"
)
@click.pass_context
@handled
def audit_checkpoint(ctx: click.Context, out_file: Path | None) -> None:
    """签署当前审计日志的检查点（C2SP 签名格式：来源、事件数、树根、签名），供见证者保存。"""
    rt = _rt(ctx)
    try:
        with rt.db.write() as session:
            row = ops.sign(rt, session)
    except KeyProblem as exc:
        raise Fail(str(exc)) from exc
    if out_file is None:
        sys.stdout.write(row.note)
    else:
        out_file.write_text(row.note)
        out.line(f"已写入 {out_file}：{row.size} 条事件，{format_local(row.signed_at)}")


@audit.command("receipt")
@click.argument("what", metavar="事件序号|案件编号")
@click.option(
    "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="写入文件（默认显示 JSON）"
)
@click.pass_context
@handled
def audit_receipt(ctx: click.Context, what: str, out_file: Path | None) -> None:
    """审计回执：事件（或案件的全部事件）、包含证明与签名检查点；持有公钥者可离线用 check-receipt 核对。"""
    from models import receipts
    from models.actions import CaseNotFound

    rt = _rt(ctx)
    try:
        data = ops.receipt(rt, what)
    except (KeyProblem, LookupError, CaseNotFound) as exc:
        raise Fail(str(exc)) from exc
    text = receipts.to_text(data)
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.write_text(text)
        out.line(f"已写入回执 {out_file}：{len(data['entries'])} 条事件，检查点 {data['tree_size']} 条")


@audit.command("prove")
@click.argument("checkpoint_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key", metavar="公钥|文件", help="校验用公钥（默认本机公钥文件）")
@click.option(
    "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="写入文件（默认显示 JSON）"
)
@click.pass_context
@handled
def audit_prove(ctx: click.Context, checkpoint_file: Path, key: str | None, out_file: Path | None) -> None:
    """一致性证明：从某人保存的旧检查点到最新检查点（RFC 6962 §2.1.2）；用于 check-receipt --newer。"""
    rt = _rt(ctx)
    try:
        data = ops.prove(rt, checkpoint_file.read_text(), key)
    except (KeyProblem, CheckpointInvalid) as exc:
        raise Fail(f"{checkpoint_file}：{exc}") from exc
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.write_text(text)
        out.line(f"已写入一致性证明 {out_file}")


@audit.command("check-receipt")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "--public-key",
    "key",
    metavar="公钥|文件",
    help="审计公钥（或公钥文件）；默认本机公钥文件。回执邮件里的命令写作 --public-key",
)
@click.option(
    "--newer",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="较新的检查点及一致性证明（shenbao audit prove 的输出）：确认事件此后仍在日志中",
)
@click.pass_context
@handled
def audit_check_receipt(ctx: click.Context, file: Path, key: str | None, newer: Path | None) -> None:
    """离线核对审计回执：只需公钥，不连数据库。回执无效时退出码为 1。"""
    from models import receipts

    rt = _rt(ctx)
    try:
        keyring = rt.keyring(key)
        data = json.loads(file.read_text())
        bundle = json.loads(newer.read_text()) if newer else None
    except KeyProblem as exc:
        raise Fail(str(exc)) from exc
    except (ValueError, OSError) as exc:
        raise Fail(f"{file}：不是 JSON 回执（{exc}）") from exc
    try:
        checked = receipts.check(data, keyring, bundle)
    except (CheckpointInvalid, ProofError, KeyError, ValueError) as exc:
        out.line(f"✗ 回执无效：{file}：{exc}")
        sys.exit(EXIT_AUDIT_PROBLEM)
    cp = checked.checkpoint
    out.line(f"回执有效：{cp.origin} 的检查点（{cp.size} 条事件，签名 {'、'.join(cp.signers)}）包含：")
    for ev in checked.events:
        at = format_local(parse_instant(ev["at"]))
        # A receipt is a file from anyone: its text is shown, never obeyed, and on one line.
        fields = (ev["actor"], ev["action"], ev["subject"], ev.get("to") or "")
        out.line(f"  第 {ev['seq']} 条  {at}  " + "  ".join(out.one_line(str(f)) for f in fields))
    if checked.newer is not None:
        out.line(f"并与较新的检查点（{checked.newer.size} 条事件）一致：此后未被改写")


@audit.command("status")
@click.pass_context
@handled
def audit_status(ctx: click.Context) -> None:
    """审计现状：本机能否签名（缺少密钥时给出警告）、公钥及指纹、日志条数、最新检查点、今日是否已签署、待发的操作回执。"""
    rt = _rt(ctx)
    now = rt.now()
    with rt.db.read() as session:
        st = ops.status(rt, session, now)
    if st.signing_key is not None:
        out.line(f"签名密钥：{st.signing_key.label}（指纹 {st.signing_key.fingerprint}）")
    else:
        out.line(f"⚠ 警告：{st.key_problem}")
    for key in st.keyring:
        out.line(f"公钥：{key.label}  指纹 {key.fingerprint}")
    if not st.keyring:
        out.line(f"公钥文件不存在：{rt.settings.resolved_keyring_file}")
    out.line(f"审计日志：{st.size} 条事件")
    if st.latest is None:
        out.line("检查点：尚未签署过")
    else:
        out.line(f"最新检查点：{st.latest.size} 条事件，签署于 {format_local(st.latest.signed_at)}")
    # A day without events has nothing to sign: the last checkpoint still covers the whole log.
    if not st.signed_today and (st.latest is None or st.latest.size < st.size):
        out.line(
            f"⚠ 今日（{format_local(now)}）尚未签署检查点"
            + ("：本机没有可用的签名密钥" if st.signing_key is None else "（下一轮对账时签署）")
        )
    if st.receipts_waiting:
        out.line(f"尚未发出回执的操作：{st.receipts_waiting} 条（有签名检查点覆盖后，下一轮对账发出）")
