"""Connectors: one sub-package per system; each talks HTTP and normalizes payloads, never touches the store."""
