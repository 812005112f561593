"""The okrsync command line: the group from app.py with every command module registered on it."""

from __future__ import annotations

from . import (  # noqa: F401  (each module registers its commands on the group)
    commands_demo,
    commands_okr,
    commands_ops,
    commands_serve,
    commands_sync,
    commands_validate,
)
from .app import cli, tune_collector

__all__ = ["cli", "main"]


def main() -> None:
    tune_collector()
    cli(prog_name="okrsync")
