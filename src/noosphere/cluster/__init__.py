"""Several node processes behaving as one node: they share the PostgreSQL store and the NATS bus
(``cluster`` settings, docs/cluster.md).

- ``membership``: each process registers itself, heartbeats, and reaps processes gone silent.
- ``leases``: once-per-cluster work (sweeps, signing, serving an agent) held by one process.
- ``dispatch``: a worker connected to one process serves requests that arrive at any other.
- ``counters``, ``limits``, ``credits``: fairness, rate limits and budgets exact across processes.
- ``launcher``: ``noosphere cluster up`` on one machine.
"""
