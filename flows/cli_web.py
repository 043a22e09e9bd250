"""``shenbao web`` and ``shenbao token …``: the CLI is the flows edge; the dashboard package keeps only the app."""

from __future__ import annotations

from typing import Any

import click

from calendars.timeutil import format_local
from flows import output as out
from flows.cli import Fail, _rt, cli, handled, json_option
from models.org import TIER_LABELS


@cli.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="监听地址（对外服务请放在 HTTPS 反向代理之后）"
)
@click.option("--port", default=8080, show_default=True, type=int, help="端口")
@click.pass_context
@handled
def web(ctx: click.Context, host: str, port: int) -> None:
    """启动协同看板与 JSON 接口（用 shenbao token issue 签发的个人令牌登录）。"""
    import uvicorn

    from dashboard.app import create_app
    from models.schema import current_revision, head_revision

    rt = _rt(ctx)
    if current_revision(rt.db) != head_revision(rt.db):
        raise Fail("数据库结构不是最新版本，请先运行 shenbao init")
    app = create_app(rt)
    out.line(f"看板：http://{host}:{port}/  （数据库 {rt.db.safe_url}）")
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True)


@cli.group()
def token() -> None:
    """个人登录令牌：签发、列出、吊销（数据库只保存令牌的哈希）。"""


def _link(base: str | None, token_text: str) -> str:
    return f"{(base or 'http://127.0.0.1:8080').rstrip('/')}/login/{token_text}"


@token.command("issue")
@click.argument("email")
@click.option("--days", default=90, show_default=True, type=int, help="有效天数")
@click.option("--org", help="同一邮箱对应多位联系人时，指定单位（名称或代码）")
@json_option
@click.pass_context
@handled
def token_issue(ctx: click.Context, email: str, days: int, org: str | None, as_json: bool) -> None:
    """为联系人签发个人令牌，打印令牌与登录链接（只显示这一次）。"""
    from dashboard.auth import AuthError, find_contact, issue_token

    rt = _rt(ctx)
    now = rt.now()
    try:
        with rt.db.write() as session:
            contact, organisation = find_contact(session, email, org)
            issued = issue_token(session, contact, organisation, now, days=days)
    except AuthError as exc:
        raise Fail(str(exc)) from exc
    link = _link(rt.settings.dashboard_url, issued.token)
    if as_json:
        out.print_json(
            {
                "id": issued.row.id,
                "token": issued.token,
                "link": link,
                "contact": contact.name,
                "email": contact.email,
                "org": organisation.name,
                "tier": organisation.tier,
                "expires_at": issued.row.expires_at,
            }
        )
        return
    out.line(
        f"已为 {organisation.name}（{TIER_LABELS.get(organisation.tier, organisation.tier)}）{contact.name} "
        f"<{contact.email}> 签发令牌 #{issued.row.id}，有效期至 {format_local(issued.row.expires_at)}"
    )
    out.line(f"令牌：{issued.token}")
    out.line(f"登录链接：{link}")
    out.line("令牌只显示这一次，数据库只保存其哈希；请通过安全渠道转交本人。")


@token.command("list")
@click.option("--email", help="只列出某个邮箱的令牌")
@json_option
@click.pass_context
@handled
def token_list(ctx: click.Context, email: str | None, as_json: bool) -> None:
    """列出已签发的令牌（不含令牌本身）。"""
    from dashboard.auth import list_tokens

    rt = _rt(ctx)
    now = rt.now()
    with rt.db.read() as session:
        rows = list_tokens(session, email)
    data: list[dict[str, Any]] = [
        {
            "id": t.id,
            "contact": c.name,
            "email": c.email,
            "org": o.name,
            "tier": o.tier,
            "created_at": t.created_at,
            "expires_at": t.expires_at,
            "revoked_at": t.revoked_at,
            "last_used_at": t.last_used_at,
            "status": "revoked" if t.revoked_at else ("expired" if now >= t.expires_at else "active"),
        }
        for t, c, o in rows
    ]
    if as_json:
        out.print_json(data)
        return
    labels = {"revoked": "已吊销", "expired": "已过期", "active": "有效"}
    out.table(
        f"令牌（{len(data)} 个）",
        ["编号", "单位", "姓名", "邮箱", "签发", "到期", "最近使用", "状态"],
        [
            [
                d["id"],
                d["org"],
                d["contact"],
                d["email"],
                format_local(d["created_at"]),
                format_local(d["expires_at"]),
                format_local(d["last_used_at"]) if d["last_used_at"] else "从未",
                labels[d["status"]],
            ]
            for d in data
        ],
        justify_numbers=False,
    )


@token.command("revoke")
@click.argument("token_id", required=False, type=int)
@click.option("--email", help="吊销该邮箱的全部令牌")
@click.pass_context
@handled
def token_revoke(ctx: click.Context, token_id: int | None, email: str | None) -> None:
    """吊销令牌：立即失效，已登录的会话和日历订阅一并失效。"""
    from dashboard.auth import AuthError, revoke_tokens

    rt = _rt(ctx)
    try:
        with rt.db.write() as session:
            revoked = revoke_tokens(session, rt.now(), token_id=token_id, email=email)
    except AuthError as exc:
        raise Fail(str(exc)) from exc
    if not revoked:
        out.line("没有需要吊销的令牌（均已吊销）")
        return
    out.line(f"已吊销令牌：{'、'.join('#' + str(t.id) for t in revoked)}")
