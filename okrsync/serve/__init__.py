"""`okrsync serve`: webhooks in, debounced syncs, polling as reconciliation, dashboard, API, health, metrics."""
