"""Workspace file model and settings: what to sync, what to compute, where secrets come from."""
