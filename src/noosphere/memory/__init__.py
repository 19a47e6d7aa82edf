"""Agent memory: zones, tiers, hybrid search, lifecycle."""
