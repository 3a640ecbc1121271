"""Metric counters, daily snapshots and their store (docs/metrics.md)."""
