"""Federation: nodes owned by different people, talking under ``/federation/`` with signed
requests. ``signing`` is how a request proves who sent it, to whom, and when."""
