"""The scheduler's state machine, driven with a fake clock and no network."""

from __future__ import annotations

import pytest

from noosphere.pool.jobs import ChatJob, JobState
from noosphere.pool.protocol import Cancel, Chunk, Done, Failed, Job, JobRequest, ModelOffer
from noosphere.pool.scheduler import UNLIMITED, QueueFull, Scheduler, Worker
from tests.pool.conftest import Clock


def worker(
    worker_id: str, *models: str, capacity: int = 1, upstream: bool = False, context: int = 2048
) -> Worker:
    return Worker(
        id=worker_id,
        name=worker_id,
        capacity=capacity,
        upstream=upstream,
        models={m: ModelOffer(name=m, context_length=context) for m in models},
    )


def job(
    clock: Clock, user: str = "user:a", model: str = "smol", prompt: int = 10, wait: float = 30.0
) -> ChatJob:
    request = JobRequest(model=model, messages=[{"role": "user", "content": "hi"}])
    return ChatJob(user=user, model=model, request=request, prompt_tokens=prompt, deadline=clock.now + wait)


def sent(w: Worker) -> list[Job | Cancel]:
    frames = []
    while not w.outbox.empty():
        frames.append(w.outbox.get_nowait())
    return frames


def test_a_job_goes_to_a_worker_that_serves_its_model(scheduler: Scheduler, clock: Clock) -> None:
    other, smol = worker("w1", "llama"), worker("w2", "smol")
    scheduler.add_worker(other)
    scheduler.add_worker(smol)
    j = job(clock)
    scheduler.submit(j)
    assert j.state is JobState.RUNNING
    assert [f.job_id for f in sent(smol)] == [j.id]
    assert sent(other) == []


def test_a_job_waits_for_capacity_then_fails_at_its_deadline(scheduler: Scheduler, clock: Clock) -> None:
    w = worker("w1", "smol")
    scheduler.add_worker(w)
    first, second = job(clock), job(clock, wait=5.0)
    scheduler.submit(first)
    scheduler.submit(second)
    assert second.state is JobState.QUEUED
    clock.now += 6
    scheduler.expire_queued()
    event = second.events.get_nowait()
    assert isinstance(event, Failed)
    assert event.code == "no_capacity"


def test_finishing_a_job_starts_the_next(scheduler: Scheduler, clock: Clock) -> None:
    w = worker("w1", "smol")
    scheduler.add_worker(w)
    first, second = job(clock), job(clock)
    scheduler.submit(first)
    scheduler.submit(second)
    scheduler.on_chunk("w1", Chunk(job_id=first.id, content="hi"))
    scheduler.on_done("w1", Done(job_id=first.id))
    assert isinstance(first.events.get_nowait(), Chunk)
    assert isinstance(first.events.get_nowait(), Done)
    assert first.completion_tokens == 1
    assert second.state is JobState.RUNNING


def test_a_light_user_is_not_stuck_behind_a_heavy_backlog(scheduler: Scheduler, clock: Clock) -> None:
    w = worker("w1", "smol")
    scheduler.add_worker(w)
    heavy = [job(clock, "user:heavy", prompt=500) for _ in range(5)]
    light = [job(clock, "user:light", prompt=5) for _ in range(5)]
    for j in heavy + light:  # the heavy user's whole backlog arrives first
        scheduler.submit(j)
    order = []
    while running := [j for j in heavy + light if j.state is JobState.RUNNING]:
        (current,) = running
        order.append(current)
        scheduler.on_done("w1", Done(job_id=current.id))
    # The newcomer is lifted to the heavy user's counter (no banked credit) and ties once; after
    # that its small jobs all run before the heavy user's third.
    assert order == [heavy[0], heavy[1], *light, *heavy[2:]]


def test_a_lost_worker_fails_started_jobs_and_requeues_unstarted_ones(
    scheduler: Scheduler, clock: Clock
) -> None:
    a = worker("a", "smol", capacity=2)
    scheduler.add_worker(a)
    started, unstarted = job(clock), job(clock)
    scheduler.submit(started)
    scheduler.submit(unstarted)
    scheduler.on_chunk("a", Chunk(job_id=started.id, content="Hel"))
    started.events.get_nowait()
    scheduler.remove_worker("a", "disconnected")
    event = started.events.get_nowait()
    assert isinstance(event, Failed)
    assert event.code == "worker_lost"
    assert unstarted.state is JobState.QUEUED
    assert unstarted.events.empty()
    b = worker("b", "smol")
    scheduler.add_worker(b)
    assert unstarted.worker_id == "b"
    assert [f.job_id for f in sent(b)] == [unstarted.id]


def test_silent_workers_are_dropped(scheduler: Scheduler, clock: Clock) -> None:
    quiet, chatty = worker("quiet", "smol"), worker("chatty", "smol")
    scheduler.add_worker(quiet)
    scheduler.add_worker(chatty)
    clock.now += 14
    scheduler.seen("chatty")
    clock.now += 2
    assert scheduler.expire_silent_workers() == ["quiet"]
    assert set(scheduler.workers) == {"chatty"}


def test_cancel_removes_a_queued_job_and_stops_a_running_one(scheduler: Scheduler, clock: Clock) -> None:
    w = worker("w1", "smol")
    scheduler.add_worker(w)
    running, queued = job(clock), job(clock)
    scheduler.submit(running)
    scheduler.submit(queued)
    sent(w)
    scheduler.cancel(queued.id)
    assert scheduler.queued() == 0
    scheduler.cancel(running.id)
    assert [type(f) for f in sent(w)] == [Cancel]
    assert w.free_slots == 1
    # A late chunk for the cancelled job is ignored.
    scheduler.on_chunk("w1", Chunk(job_id=running.id, content="late"))
    assert running.completion_tokens == 0


def test_upstreams_take_spill_over_after_the_wait(scheduler: Scheduler, clock: Clock) -> None:
    w, up = worker("w1", "smol"), worker("up", "smol", capacity=10, upstream=True)
    scheduler.add_worker(w)
    scheduler.add_worker(up)
    first, second = job(clock), job(clock)
    scheduler.submit(first)
    scheduler.submit(second)
    assert first.worker_id == "w1"
    assert second.state is JobState.QUEUED
    clock.now += 2.5
    scheduler.dispatch()
    assert second.worker_id == "up"
    assert second.spilled


def test_a_model_only_upstreams_serve_goes_there_at_once(scheduler: Scheduler, clock: Clock) -> None:
    scheduler.add_worker(worker("up", "gpt-x", capacity=4, upstream=True))
    j = job(clock, model="gpt-x")
    scheduler.submit(j)
    assert j.worker_id == "up"


def peer_worker(worker_id: str, node: str, *models: str) -> Worker:
    made = worker(worker_id, *models, capacity=4, upstream=True)
    made.peer = node
    return made


def test_a_peer_node_comes_after_upstreams_never_back_and_not_past_two_hops(
    scheduler: Scheduler, clock: Clock
) -> None:
    scheduler.add_worker(peer_worker("peer-b", "node-b", "smol"))
    scheduler.add_worker(worker("up", "smol", capacity=1, upstream=True))
    first, second = job(clock), job(clock)
    scheduler.submit(first)
    scheduler.submit(second)
    assert (first.worker_id, second.worker_id) == ("up", "peer-b")  # the upstream first, then the peer
    came_from_b = job(clock)
    came_from_b.via = ("node-b",)
    scheduler.submit(came_from_b)
    assert came_from_b.state is JobState.QUEUED  # never back to a node it came through
    scheduler.add_worker(peer_worker("peer-c", "node-c", "smol"))
    assert came_from_b.worker_id == "peer-c"
    far = job(clock)
    far.via = ("node-a", "node-d")
    scheduler.submit(far)
    assert far.state is JobState.QUEUED  # two hops already: it runs here or nowhere


def test_prompts_longer_than_the_context_wait_for_a_bigger_worker(scheduler: Scheduler, clock: Clock) -> None:
    scheduler.add_worker(worker("small", "smol", context=100))
    j = job(clock, prompt=500)
    scheduler.submit(j)
    assert j.state is JobState.QUEUED
    scheduler.add_worker(worker("big", "smol", context=8192))
    assert j.worker_id == "big"


def test_a_full_queue_refuses_new_jobs(scheduler: Scheduler, clock: Clock) -> None:
    for _ in range(10):
        scheduler.submit(job(clock, model="nobody-serves-this"))
    with pytest.raises(QueueFull):
        scheduler.submit(job(clock))


def test_an_idle_user_returns_at_the_active_minimum(scheduler: Scheduler, clock: Clock) -> None:
    w = worker("w1", "smol")
    scheduler.add_worker(w)
    busy = job(clock, "user:busy", prompt=300)
    scheduler.submit(busy)
    scheduler.submit(job(clock, "user:busy", prompt=300))
    scheduler.counters["user:idle"] = 0.0
    scheduler.submit(job(clock, "user:idle", prompt=1))
    assert scheduler.counters["user:idle"] == scheduler.counters["user:busy"]


def test_a_stream_with_no_token_for_too_long_ends_as_stalled(clock: Clock) -> None:
    scheduler = Scheduler(heartbeat_interval=5.0, clock=clock, stall_after=30.0)
    a = worker("a", "smol", capacity=2)
    scheduler.add_worker(a)
    quiet, chatty = job(clock), job(clock)
    scheduler.submit(quiet)
    scheduler.submit(chatty)
    sent(a)
    for _ in range(4):  # the worker heartbeats (seen) and streams one job, never the other
        clock.now += 10
        scheduler.seen("a")
        scheduler.on_chunk("a", Chunk(job_id=chatty.id, content="x"))
        scheduler.expire_stalled()
    assert scheduler.expire_stalled() == []  # already ended
    events = []
    while not quiet.events.empty():
        events.append(quiet.events.get_nowait())
    (failed,) = events
    assert isinstance(failed, Failed) and failed.code == "worker_stalled"
    assert [f.job_id for f in sent(a) if isinstance(f, Cancel)] == [quiet.id]
    assert chatty.state is JobState.RUNNING and a.running.keys() == {chatty.id}


def test_users_who_are_done_leave_no_queue_or_running_count_behind(
    scheduler: Scheduler, clock: Clock
) -> None:
    # Deciding whether a user is active must not cost more as users come and go: only users with
    # waiting or running jobs are kept.
    w = worker("w1", "smol", capacity=2)
    scheduler.add_worker(w)
    jobs = [job(clock, user=f"user:{n}") for n in range(5)]
    for j in jobs:
        scheduler.submit(j)
    for j in jobs[:2]:  # running
        scheduler.on_chunk("w1", Chunk(job_id=j.id, content="xyz", tokens=3))
        assert j.completion_tokens == 3
    scheduler.cancel(jobs[2].id)  # waiting, then cancelled
    clock.now += 60
    scheduler.expire_queued()  # the other waiting ones expire
    assert set(scheduler.queues) == set()
    scheduler.on_done("w1", Done(job_id=jobs[0].id))
    scheduler.on_failed("w1", Failed(job_id=jobs[1].id))
    assert scheduler.queues == {} and scheduler._running == {}
    assert not any(scheduler._active(f"user:{n}") for n in range(5))


def bulk(clock: Clock, user: str = "user:a", prompt: int = 10) -> ChatJob:
    j = job(clock, user=user, prompt=prompt)
    j.bulk = True
    return j


def test_a_bulk_limit_holds_chats_back_in_fair_order_and_spares_other_jobs(
    scheduler: Scheduler, clock: Clock
) -> None:
    """While chats take turns (``server/interactive.py``), the ones past the limit wait in the
    same queues and order as for a busy worker: a user flooding chats does not go ahead of one
    who sent a single chat, and agents' model calls (not bulk) are not held back."""
    w = worker("w1", "smol", capacity=100)
    scheduler.add_worker(w)
    scheduler.limit_bulk(1)
    heavy = [bulk(clock, "user:heavy") for _ in range(4)]
    for j in heavy:
        scheduler.submit(j)
    light = bulk(clock, "user:light")
    scheduler.submit(light)
    assert [j.state for j in heavy] == [JobState.RUNNING] + [JobState.QUEUED] * 3
    assert light.state is JobState.QUEUED and scheduler.bulk_running == 1
    agent_call = job(clock, user="agent:scribe")
    scheduler.submit(agent_call)
    assert agent_call.state is JobState.RUNNING  # not bulk: the limit does not apply
    scheduler.on_chunk(w.id, Chunk(job_id=heavy[0].id, content=" w" * 50, tokens=50))
    scheduler.on_done(w.id, Done(job_id=heavy[0].id))
    assert light.state is JobState.QUEUED  # its slot is held until the answer is out and paid for
    scheduler.release(heavy[0])
    assert light.state is JobState.RUNNING  # the heavy user has been served more: light goes first
    assert heavy[1].state is JobState.QUEUED
    scheduler.limit_bulk(3)  # a higher limit starts waiting chats at once
    assert [j.state for j in heavy[1:]] == [JobState.RUNNING, JobState.RUNNING, JobState.QUEUED]
    assert scheduler.bulk_running == 3


def test_chats_held_back_leave_no_count_behind_when_cancelled_lost_or_done(
    scheduler: Scheduler, clock: Clock
) -> None:
    w = worker("w1", "smol", capacity=10)
    scheduler.add_worker(w)
    scheduler.limit_bulk(2)
    first, second, waiting = bulk(clock), bulk(clock, "user:b"), bulk(clock, "user:c")
    for j in (first, second, waiting):
        scheduler.submit(j)
    scheduler.cancel(waiting.id)  # its client left while it waited: gone from the queue
    assert scheduler.queued() == 0 and waiting.state is JobState.FINISHED
    scheduler.on_chunk(w.id, Chunk(job_id=first.id, content="x", tokens=1))
    scheduler.remove_worker(w.id, "disconnected")  # first fails (streamed), second is requeued
    assert scheduler.bulk_running == 1 and second.state is JobState.QUEUED
    scheduler.release(first)  # its requester has reported the failure
    scheduler.release(first)  # once only
    assert scheduler.bulk_running == 0
    scheduler.limit_bulk(UNLIMITED)
    replacement = worker("w2", "smol", capacity=10)
    scheduler.add_worker(replacement)
    assert second.state is JobState.RUNNING and scheduler.bulk_running == 1
    scheduler.on_done(replacement.id, Done(job_id=second.id))
    scheduler.release(second)
    assert scheduler.bulk_running == 0
