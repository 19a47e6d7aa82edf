"""The model pool: workers, routing with fairness, the gateway's jobs and its token ledger."""
