"""The books write finished requests' usage to a real SQLite store: within the delay, in shared
transactions; before the answer at delay 0 or past the backlog limit; again after the store was
unavailable; never twice, and never silently dropped."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import anyio
import pytest

from noosphere.auth.principal import Principal, PrincipalKind
from noosphere.config import PoolSettings
from noosphere.errors import StorageUnavailable
from noosphere.pool import books as books_module
from noosphere.pool.books import Admitted, Books
from noosphere.pool.jobs import ChatJob, JobState
from noosphere.pool.ledger import Ledger
from noosphere.pool.protocol import JobRequest
from noosphere.pool.tokens import TokenCounter
from noosphere.store.contract import Charge
from noosphere.store.sqlite import SQLiteStore

ANN = Principal(id="user:ann", kind=PrincipalKind.USER, name="ann")
REQUEST = JobRequest(model="m", messages=[{"role": "user", "content": "hello there"}])


class FlakyStore(SQLiteStore):
    """A real SQLite store whose usage writes fail while ``down`` (as a locked or full disk does)."""

    down = False
    writes = 0

    async def record_usage(self, batch: Sequence[Charge]) -> None:
        if self.down:
            raise StorageUnavailable("the database is unavailable: disk I/O error")
        self.writes += 1
        await super().record_usage(batch)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[FlakyStore]:
    opened = FlakyStore(tmp_path / "books.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


def finished(n: int) -> tuple[Admitted, ChatJob]:
    job = ChatJob(user=ANN.id, model="m", request=REQUEST, prompt_tokens=6, deadline=0.0)
    job.state, job.outcome, job.worker_account = JobState.FINISHED, "ok", "upstream:mock"
    job.output = [f"answer number {n}"]
    return Admitted(ANN, REQUEST, None, 0.0), job


async def settle(books: Books, ledger: Ledger, n: int) -> None:
    """What the gateway does when a request ends."""
    admitted, job = finished(n)
    await ledger.settle(ANN, job, 0.0)
    await books.write(admitted, job)


async def _count(store: SQLiteStore) -> int:
    def count(conn: sqlite3.Connection) -> int:
        (n,) = conn.execute("SELECT count(*) FROM usage_requests").fetchone()
        return int(n)

    return await store._run(count)


async def until(what: str, condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, what
        await anyio.sleep(0.01)


async def test_answers_are_written_within_the_delay_in_shared_transactions(
    store: FlakyStore, counter: TokenCounter
) -> None:
    ledger = Ledger(store, counter)
    books = Books(ledger, PoolSettings(ledger_delay_ms=500))
    for n in range(20):
        await settle(books, ledger, n)  # returns at once: nothing waits for the disk
    assert await _count(store) == 0
    assert await ledger.spent(ANN) > 0  # unwritten usage still counts against budgets

    async def all_written() -> bool:
        # The books learn of the commit a loop pass after the rows are visible to another call.
        return await _count(store) == 20 and books.unwritten == 0

    await until("the usage was written", all_written)
    assert store.writes == 1  # one transaction for all twenty
    assert books.unwritten == 0
    await books.close()


async def test_at_delay_zero_an_answer_waits_for_its_write_and_fails_with_it(
    store: FlakyStore, counter: TokenCounter
) -> None:
    ledger = Ledger(store, counter)
    books = Books(ledger, PoolSettings(ledger_delay_ms=0))
    await settle(books, ledger, 1)
    assert await _count(store) == 1
    store.down = True
    with pytest.raises(StorageUnavailable, match="could not be recorded"):
        await settle(books, ledger, 2)
    assert books.unwritten == 0
    await books.close()


async def test_writes_that_fail_while_the_store_is_down_are_written_once_it_is_back(
    store: FlakyStore, counter: TokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(books_module, "RETRY_SECONDS", 0.05)
    ledger = Ledger(store, counter)
    books = Books(ledger, PoolSettings(ledger_delay_ms=10))
    store.down = True
    for n in range(5):
        await settle(books, ledger, n)
    await anyio.sleep(0.2)  # several failed tries
    assert await _count(store) == 0
    assert books.unwritten == 5
    pending = await ledger.spent(ANN)
    assert pending > 0  # still counted against the budget while unwritten
    store.down = False

    async def written() -> bool:
        return books.unwritten == 0

    await until("the retried usage was written", written)
    assert await _count(store) == 5  # each exactly once
    assert await ledger.spent(ANN) == pytest.approx(pending)  # now from the written balance
    await books.close()


async def test_past_the_backlog_limit_answers_wait_for_their_own_write(
    store: FlakyStore, counter: TokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(books_module, "BACKLOG_LIMIT", 3)
    monkeypatch.setattr(books_module, "RETRY_SECONDS", 60)
    ledger = Ledger(store, counter)
    books = Books(ledger, PoolSettings(ledger_delay_ms=10))
    store.down = True
    for n in range(3):
        await settle(books, ledger, n)  # deferred
    with pytest.raises(StorageUnavailable):  # the fourth waits for its write, which fails
        await settle(books, ledger, 3)
    assert books.unwritten == 3  # the backlog does not grow past the limit
    store.down = False
    await books.close()  # one last try on the way out
    assert await _count(store) == 3


async def test_closing_writes_what_is_waiting(store: FlakyStore, counter: TokenCounter) -> None:
    ledger = Ledger(store, counter)
    books = Books(ledger, PoolSettings(ledger_delay_ms=1000))
    for n in range(7):
        await settle(books, ledger, n)
    await books.close()
    assert await _count(store) == 7
