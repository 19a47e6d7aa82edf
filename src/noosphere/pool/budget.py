"""Budget periods: which running balance a key's budget is checked against. A ``total`` budget
never resets; ``daily`` and ``monthly`` ones start again at midnight UTC and on the first of the
month. The store keeps a balance per account for each period a ledger entry falls in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

BudgetPeriod = Literal["total", "daily", "monthly"]
TOTAL = "total"


def period_key(period: BudgetPeriod, at: datetime) -> str:
    """The balance row a budget of ``period`` reads at time ``at``."""
    if period == "total":
        return TOTAL
    moment = at.astimezone(UTC)  # formatted by hand: strftime costs more than the rest of admission
    if period == "daily":
        return f"day:{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    return f"month:{moment.year:04d}-{moment.month:02d}"


def periods_of(at: datetime) -> tuple[str, str, str]:
    """Every balance row a ledger entry made at ``at`` adds to."""
    return TOTAL, period_key("daily", at), period_key("monthly", at)


def resets_at(period: BudgetPeriod, now: datetime) -> datetime | None:
    """When a budget of ``period`` starts again (None: never)."""
    moment = now.astimezone(UTC)
    if period == "daily":
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
    if period == "monthly":
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)
    return None


__all__ = ["TOTAL", "BudgetPeriod", "period_key", "periods_of", "resets_at"]
