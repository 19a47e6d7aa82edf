"""``noosphere key …`` (user API keys for the OpenAI-compatible gateway) and ``noosphere usage``,
through the node's API."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from noosphere.cli.client import segment
from noosphere.cli.options import ConfigOpt, DataDirOpt, JsonOpt, TokenOpt, call, record_command
from noosphere.cli.output import console, emit_json, table

key_app = typer.Typer(
    callback=record_command,
    help="Manage users' API keys for the OpenAI-compatible gateway.",
    no_args_is_help=True,
)

Period = Literal["total", "daily", "monthly"]
Group = Literal["principal", "key_id", "worker", "model"]


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
    ] = "total",
    conversations: Annotated[
        bool, typer.Option("--conversations", help="Keep its chat exchanges as conversation memories.")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key for USER and print it (once)."""
    body = {
        "user": user,
        "name": name,
        "rpm": rpm,
        "tpm": tpm,
        "budget": budget,
        "budget_period": budget_period,
        "conversations": conversations,
    }
    created = call(config, data_dir, token, "POST", "/api/v1/keys", body)
    if as_json:
        emit_json(created)
    else:
        console.print(f"created {created['id']} for {created['user']}; the key (shown once):")
        print(created["key"])


@key_app.command("list")
def list_keys(
    user: Annotated[str | None, typer.Argument()] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List API keys (of USER, or all) with their limits and what they spent."""
    keys = call(config, data_dir, token, "GET", "/api/v1/keys", params={"user": user})
    if as_json:
        emit_json(keys)
        return
    shown = table("id", "user", "name", "rpm", "tpm", "budget", "spent", "state")  # spent: this period
    for k in keys:
        period = "" if k["budget_period"] == "total" else f" {k['budget_period']}"
        shown.add_row(
            k["id"],
            k["user"],
            k["name"],
            _limit(k["rpm"]),
            _limit(k["tpm"]),
            _limit(k["budget"]) + period,
            f"{k['spent']:g}",
            "revoked" if k["revoked"] else "active",
        )
    console.print(shown)


@key_app.command("revoke")
def revoke(
    key_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None, token: TokenOpt = None
) -> None:
    """Revoke an API key (its spending history stays in the ledger)."""
    call(config, data_dir, token, "DELETE", f"/api/v1/keys/{segment(key_id)}")
    console.print(f"revoked {key_id}")


def usage(
    by: Annotated[Group, typer.Option(help="Group by principal, key_id, worker or model.")] = "key_id",
    days: Annotated[float | None, typer.Option(help="Only the last N days.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tokens and credits from the ledger: what callers spent and workers earned."""
    rows = call(config, data_dir, token, "GET", "/api/v1/usage", params={"by": by, "days": days})
    if as_json:
        emit_json([{by: r.pop("group"), **r} for r in rows])
        return
    shown = table(by, "requests", "prompt tokens", "completion tokens", "credits")
    for r in rows:
        shown.add_row(
            r["group"],
            str(r["requests"]),
            str(r["prompt_tokens"]),
            str(r["completion_tokens"]),
            f"{r['credits']:g}",
        )
    console.print(shown)
