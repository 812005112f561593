"""Connector and writer factories by system type (each sub-package exposes build / build_writer)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from okrsync.config.settings import SourceCredentials

from .base import Connector, ConnectorOptions, SourceError, Writer


def build_connector(name: str, config: Any, credentials: SourceCredentials, options: ConnectorOptions) -> Connector:
    """connectors/<type>/connector.py: build(name, config, credentials, options) -> Connector."""
    module = _load(config.type, "connector", name)
    connector: Connector = module.build(name, config, credentials, options)
    return connector


def build_writer(kind: str, name: str | None, config: Any, credentials: SourceCredentials | None,
                 options: ConnectorOptions) -> Writer:
    """connectors/<kind>/writer.py: build_writer(name, config, credentials, options) -> Writer."""
    module = _load(kind, "writer", name or kind)
    writer: Writer = module.build_writer(name, config, credentials, options)
    return writer


def _load(kind: str, part: str, name: str) -> ModuleType:
    try:
        return importlib.import_module(f"okrsync.connectors.{kind}.{part}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("okrsync.connectors"):
            raise SourceError(f"{name}: no {part} for {kind} sources in this version of okrsync") from None
        raise
