"""Load YAML keeping each node's line, so errors can name file:line:field."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# A location in the document: mapping keys and sequence indexes from the root.
YamlPath = tuple[Hashable, ...]


class ConfigError(Exception):
    """A user-fixable configuration problem; str() is the one-line message."""


@dataclass
class LoadedYaml:
    data: Any
    path: str
    # (path tuple) -> line (1-based) of the key, and of the value
    key_lines: dict[YamlPath, int]
    value_lines: dict[YamlPath, int]

    def line_for(self, loc: YamlPath) -> int | None:
        """Best line for a location: the deepest known prefix (key line first)."""
        loc = tuple(loc)
        while loc:
            if loc in self.key_lines:
                return self.key_lines[loc]
            if loc in self.value_lines:
                return self.value_lines[loc]
            loc = loc[:-1]
        return self.value_lines.get((), None)

    def where(self, loc: YamlPath) -> str:
        line = self.line_for(loc)
        return f"{self.path}:{line}" if line else self.path


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
    seen: dict[Hashable, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _walk(node: yaml.Node, loader: _Loader, prefix: YamlPath, keys: dict[YamlPath, int],
          values: dict[YamlPath, int]) -> None:
    values[prefix] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            path = prefix + (key,)
            keys[path] = key_node.start_mark.line + 1
            _walk(value_node, loader, path, keys, values)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loader, prefix + (i,), keys, values)


def load_yaml_text(text: str, path: str = "<string>") -> LoadedYaml:
    """Parse YAML text; raise ConfigError naming path:line on syntax errors."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
            keys: dict[YamlPath, int] = {}
            values: dict[YamlPath, int] = {}
            if node is not None:
                _walk(node, loader, (), keys, values)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return LoadedYaml(data, path, keys, values)


def load_yaml_file(path: str | Path) -> LoadedYaml:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: workspace file not found (run 'okrsync init' to create one, or pass -w FILE)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the workspace file: {exc}") from None
    return load_yaml_text(text, str(p))
