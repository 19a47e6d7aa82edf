"""The scheduler in a cluster process: other processes' workers as remote workers (after this
process's own, before upstreams), jobs another process sent (this process's workers only, no
fairness charge), a remote worker that could not take a job after all, and the service counted
for the shared fairness counters."""

from __future__ import annotations

from noosphere.pool.jobs import JobState
from noosphere.pool.scheduler import Scheduler, Worker
from tests.pool.conftest import Clock
from tests.pool.test_scheduler import job, sent, worker


def remote(model: str, capacity: int) -> Worker:
    made = worker(f"cluster:{model}", model, capacity=capacity)
    made.remote = True
    return made


def test_remote_workers_come_after_own_ones_and_before_upstreams(scheduler: Scheduler, clock: Clock) -> None:
    own, elsewhere = worker("own", "smol"), remote("smol", 2)
    scheduler.add_worker(worker("up", "smol", capacity=9, upstream=True))
    scheduler.add_worker(elsewhere)
    scheduler.add_worker(own)
    jobs = [job(clock) for _ in range(4)]
    for j in jobs:
        scheduler.submit(j)
    assert [j.worker_id for j in jobs[:3]] == ["own", "cluster:smol", "cluster:smol"]
    assert jobs[3].state is JobState.QUEUED  # the upstream only after the spill wait
    clock.now += 2.5
    scheduler.dispatch()
    assert jobs[3].worker_id == "up"
    assert [w.kind for w in (own, elsewhere, scheduler.workers["up"])] == ["worker", "cluster", "upstream"]


def test_a_job_from_another_process_runs_on_own_workers_only_and_charges_no_counter(
    scheduler: Scheduler, clock: Clock
) -> None:
    scheduler.add_worker(remote("smol", 5))
    scheduler.add_worker(worker("up", "smol", capacity=5, upstream=True))
    sent_here = job(clock)
    sent_here.local_only, sent_here.fair = True, False
    scheduler.submit(sent_here)
    clock.now += 5
    scheduler.dispatch()
    assert sent_here.state is JobState.QUEUED  # never back to the cluster, nor to an upstream
    own = worker("own", "smol")
    scheduler.add_worker(own)
    assert sent_here.worker_id == "own"
    assert scheduler.counters.get(sent_here.user, 0.0) == 0.0  # the requesting process counts it


def test_a_job_a_remote_worker_could_not_take_goes_back_to_the_front(
    scheduler: Scheduler, clock: Clock
) -> None:
    elsewhere = remote("smol", 1)
    scheduler.add_worker(elsewhere)
    first, second = job(clock), job(clock)
    scheduler.submit(first)
    scheduler.submit(second)
    assert first.worker_id == "cluster:smol" and second.state is JobState.QUEUED
    elsewhere.capacity = 0  # the taker said busy: no free slot until its next offers
    scheduler.requeue(elsewhere.id, first.id)
    assert first.state is JobState.QUEUED and first.worker_id is None
    own = worker("own", "smol")
    scheduler.add_worker(own)
    assert first.worker_id == "own"  # still ahead of the job that came after it
    assert [f.job_id for f in sent(own)] == [first.id]


def test_service_counted_here_waits_for_the_shared_counters(scheduler: Scheduler, clock: Clock) -> None:
    changes: list[int] = []
    scheduler.on_change = lambda: changes.append(1)
    scheduler.unshared = {}
    scheduler.add_worker(worker("own", "smol"))
    j = job(clock, prompt=10)
    scheduler.submit(j)
    assert scheduler.unshared == {j.user: 10.0}
    assert scheduler.lifted == {j.user: 0.0}  # a newcomer's lift, for the shared counter too
    assert scheduler.active_users() == [j.user]
    assert changes  # the cluster publishes what its workers offer when this changes
