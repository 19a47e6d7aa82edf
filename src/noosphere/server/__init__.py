"""HTTP, MCP and WebSocket adapters over the node's services."""
