"""Load the replication mapping (YAML) into frozen table mappings; a bad file is refused with file:line (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from core.yamlconf import YamlConfigError, parse_validated
from replication.transforms import BUILTIN, Transform, value_map

SANDBOX_MAPPING = "sandbox_mapping.yaml"


class ConfigError(ValueError):
    """A mapping file was refused; str() reads `file:line: reason`."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source, self.line, self.reason = source, line, reason
        super().__init__(f"{source}:{line}: {reason}")


@dataclass(frozen=True)
class ColumnMapping:
    """Where one source column goes: the target column name and an optional transform."""

    source: str
    target: str
    transform: Transform | None = None
    line: int = 0


@dataclass(frozen=True)
class TableMapping:
    """One source table's target and its explicit column rules; unlisted, unexcluded columns pass through as is."""

    source: str  # schema.table
    target: str  # schema.table
    columns: Mapping[str, ColumnMapping] = field(default_factory=dict)  # by source column
    exclude: frozenset[str] = frozenset()
    line: int = 0
    origin: str = "<string>"

    @property
    def source_schema(self) -> str:
        return self.source.split(".", 1)[0]

    @property
    def source_table(self) -> str:
        return self.source.split(".", 1)[1]

    @property
    def target_schema(self) -> str:
        return self.target.split(".", 1)[0]

    @property
    def target_table(self) -> str:
        return self.target.split(".", 1)[1]

    def where(self) -> str:
        """Return `file:line` of this table's entry, for messages."""
        return f"{self.origin}:{self.line}"

    def rule_for(self, column: str) -> ColumnMapping | None:
        """Return how a source column is carried: its explicit rule, a same-name pass-through, or None if excluded."""
        if column in self.exclude:
            return None
        return self.columns.get(column) or ColumnMapping(column, column)


@dataclass(frozen=True)
class MappingConfig:
    """The whole mapping: default slot and publication names and the tables by source name."""

    tables: Mapping[str, TableMapping]
    slot: str | None = None
    publication: str | None = None
    source: str = "<string>"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files("replication").joinpath("mapping_schema.json").read_text())
    return schema


def _transform(spec: Any, source: str, line: int) -> Transform | None:
    if spec is None:
        return None
    if isinstance(spec, dict):
        return value_map({str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in spec["map"].items()})
    if spec not in BUILTIN:
        raise ConfigError(source, line, f"unknown transform {spec!r} (known: {', '.join(sorted(BUILTIN))}, map)")
    return BUILTIN[spec]


def _table(name: str, spec: Mapping[str, Any], lines: Mapping[tuple[Any, ...], int], source: str) -> TableMapping:
    line = lines[("tables", name)]
    columns: dict[str, ColumnMapping] = {}
    for column, rule in (spec.get("columns") or {}).items():
        col_line = lines[("tables", name, "columns", column)]
        if isinstance(rule, str):
            rule = {"to": rule}
        transform = _transform(rule.get("transform"), source, col_line)
        columns[column] = ColumnMapping(column, rule.get("to", column), transform, col_line)
    exclude = frozenset(spec.get("exclude") or ())
    for column in sorted(exclude & columns.keys()):
        raise ConfigError(source, columns[column].line, f"{name}: column {column!r} is both mapped and excluded")
    targets: dict[str, str] = {}
    for rule in columns.values():
        if rule.target in targets:
            raise ConfigError(
                source, rule.line, f"{name}: {rule.source!r} and {targets[rule.target]!r} both feed {rule.target!r}"
            )
        targets[rule.target] = rule.source
    return TableMapping(name, spec["target"], columns, exclude, line, source)


def parse_mapping(text: str, source: str = "<string>") -> MappingConfig:
    """Parse and validate mapping text, or raise ConfigError naming file, line and reason."""
    try:
        data, lines = parse_validated(text, source, _schema())
    except YamlConfigError as exc:
        raise ConfigError(source, exc.line, exc.reason) from None
    tables = {name: _table(name, spec, lines, source) for name, spec in data["tables"].items()}
    seen: dict[str, str] = {}
    for table in tables.values():
        if table.target in seen:
            raise ConfigError(source, table.line, f"{table.source} and {seen[table.target]} both feed {table.target}")
        seen[table.target] = table.source
    return MappingConfig(tables, data.get("slot"), data.get("publication"), source)


def load_mapping(path: Path | None = None) -> MappingConfig:
    """Read a mapping file (the shipped sandbox mapping when None); an unreadable file is a ConfigError too."""
    if path is None:
        resource = resources.files("replication").joinpath(SANDBOX_MAPPING)
        return parse_mapping(resource.read_text(), f"replication/{SANDBOX_MAPPING}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), 0, f"cannot read: {exc.strerror}") from None
    return parse_mapping(text, str(path))
