"""``noosphere key …`` (user API keys for the OpenAI-compatible gateway) and ``noosphere usage``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from noosphere.auth.principal import key_account
from noosphere.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    TokenOpt,
    console,
    emit_json,
    opened_node,
    record_command,
    run,
)
from noosphere.pool.budget import period_key

key_app = typer.Typer(
    callback=record_command,
    help="Manage users' API keys for the OpenAI-compatible gateway.",
    no_args_is_help=True,
)


class Period(StrEnum):
    TOTAL = "total"
    DAILY = "daily"
    MONTHLY = "monthly"


def _limit(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@key_app.command("create")
def create(
    user: str,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    budget: Annotated[float | None, typer.Option(help="Credits it may spend (per --budget-period).")] = None,
    budget_period: Annotated[
        Period, typer.Option("--budget-period", help="When the budget starts again.")
    ] = Period.TOTAL,
    conversations: Annotated[
        bool, typer.Option("--conversations", help="Keep its chat exchanges as conversation memories.")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key for USER and print it (once)."""

    async def go() -> None:
        async with opened_node(config, data_dir, token) as node:
            record, secret = await node.auth.create_api_key(
                user, name, rpm, tpm, budget, budget_period.value, conversations
            )
        if as_json:
            emit_json(
                {
                    "id": record.id,
                    "user": record.user_id,
                    "name": record.name,
                    "rpm": rpm,
                    "tpm": tpm,
                    "budget": budget,
                    "budget_period": record.budget_period,
                    "conversations": record.capture,
                    "key": secret,
                }
            )
        else:
            console.print(f"created {record.id} for {record.user_id}; the key (shown once):")
            print(secret)

    run(go)


@key_app.command("list")
def list_keys(
    user: Annotated[str | None, typer.Argument()] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List API keys (of USER, or all) with their limits and what they spent."""

    async def go() -> None:
        async with opened_node(config, data_dir, token) as node:
            keys = await node.auth.api_keys(user)
            now = datetime.now(UTC)
            spent = {
                k.id: -await node.store.balance(key_account(k.id), period_key(k.budget_period, now))
                for k in keys
            }
        if as_json:
            emit_json(
                [
                    {
                        "id": k.id,
                        "user": k.user_id,
                        "name": k.name,
                        "rpm": k.rpm,
                        "tpm": k.tpm,
                        "budget": k.budget,
                        "budget_period": k.budget_period,
                        "spent": spent[k.id],
                        "conversations": k.capture,
                        "revoked": k.revoked,
                    }
                    for k in keys
                ]
            )
            return
        table = Table("id", "user", "name", "rpm", "tpm", "budget", "spent", "state")  # spent: this period
        for k in keys:
            table.add_row(
                k.id,
                k.user_id,
                k.name,
                _limit(k.rpm),
                _limit(k.tpm),
                _limit(k.budget) + ("" if k.budget_period == "total" else f" {k.budget_period}"),
                f"{spent[k.id]:g}",
                "revoked" if k.revoked else "active",
            )
        console.print(table)

    run(go)


@key_app.command("revoke")
def revoke(
    key_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Revoke an API key (its spending history stays in the ledger)."""

    async def go() -> None:
        async with opened_node(config, data_dir, token) as node:
            await node.auth.revoke_api_key(key_id)
        console.print(f"revoked {key_id}")

    run(go)


def usage(
    by: Annotated[str, typer.Option(help="Group by principal, key_id, worker or model.")] = "key_id",
    days: Annotated[float | None, typer.Option(help="Only the last N days.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tokens and credits from the ledger: what callers spent and workers earned."""

    async def go() -> None:
        async with opened_node(config, data_dir, token) as node:
            since = None if days is None else datetime.now(UTC) - timedelta(days=days)
            rows = await node.store.usage_summary(by, since)
        if as_json:
            emit_json(
                [
                    {
                        by: r.group,
                        "requests": r.requests,
                        "prompt_tokens": r.prompt_tokens,
                        "completion_tokens": r.completion_tokens,
                        "credits": r.credits,
                    }
                    for r in rows
                ]
            )
            return
        table = Table(by, "requests", "prompt tokens", "completion tokens", "credits")
        for r in rows:
            table.add_row(
                r.group, str(r.requests), str(r.prompt_tokens), str(r.completion_tokens), f"{r.credits:g}"
            )
        console.print(table)

    run(go)
