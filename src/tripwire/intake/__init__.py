"""Checkpoints announced by trainers: the signed webhook event, the roots announced checkpoints
may live under, and taking accepted events through the watcher's ingest."""
