"""The engine: store, sync, compute, write-back and scheduling; it owns transactions."""
