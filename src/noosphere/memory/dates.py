"""Days a search names: "what did Mia do on 14 May 2023?" asks about what was said that day.

Only explicit calendar dates count ("14 May 2023", "May 14, 2023", "2023-05-14"): a relative
phrase ("last week") would need the asker's own date, which a search does not have. Each date
found becomes a one-day window (UTC) that the search also looks in (``MemoryService.search``).
Written here rather than taken from a date-parsing library: those parse a whole string as one
date, and a fuzzy mode that skips the other words also invents dates from stray numbers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MAX_DAYS = 4  # days one query may name
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
            ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
            ("october", "oct"), ("november", "nov"), ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}  # fmt: skip
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY_MONTH_YEAR = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?(?: of)? ({_MONTH})\.?,? (\d{{4}})\b", re.IGNORECASE
)
_MONTH_DAY_YEAR = re.compile(rf"\b({_MONTH})\.? (\d{{1,2}})(?:st|nd|rd|th)?,? (\d{{4}})\b", re.IGNORECASE)
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def _day(year: str, month: int, day: str) -> datetime | None:
    try:
        return datetime(int(year), month, int(day), tzinfo=UTC)
    except ValueError:  # 31 February and the like
        return None


def named_days(text: str) -> list[tuple[datetime, datetime]]:
    """The days ``text`` names, as [start, end) windows, in order, at most ``MAX_DAYS``."""
    found: list[tuple[int, datetime | None]] = []
    for m in _DAY_MONTH_YEAR.finditer(text):
        found.append((m.start(), _day(m.group(3), _MONTHS[m.group(2).lower()], m.group(1))))
    for m in _MONTH_DAY_YEAR.finditer(text):
        found.append((m.start(), _day(m.group(3), _MONTHS[m.group(1).lower()], m.group(2))))
    for m in _ISO.finditer(text):
        found.append((m.start(), _day(m.group(1), int(m.group(2)), m.group(3))))
    days = dict.fromkeys(day for _, day in sorted(found, key=lambda item: item[0]) if day is not None)
    return [(day, day + timedelta(days=1)) for day in list(days)[:MAX_DAYS]]


__all__ = ["MAX_DAYS", "named_days"]
