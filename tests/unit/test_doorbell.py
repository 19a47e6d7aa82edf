from __future__ import annotations

import anyio

from noosphere.bus.envelope import Delivery
from noosphere.bus.transport import Doorbell


async def test_receivers_that_give_up_leave_no_bell_behind() -> None:
    bell = Doorbell(poll=0.01)

    async def nothing() -> list[Delivery]:
        return []

    async with anyio.create_task_group() as group:
        for i in range(50):  # one-off inboxes, as request/reply makes
            group.start_soon(bell.receive, f"_inbox.{i}", 0.02, nothing)
        group.start_soon(bell.receive, "_inbox.0", 0.05, nothing)  # two waiters on one mailbox
    assert bell._bells == {}
    assert bell._waiting == {}
