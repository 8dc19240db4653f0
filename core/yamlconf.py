"""YAML configuration read with line numbers and validated by a JSON schema (pure: parses the text it is given)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
import yaml

Path_ = tuple[Any, ...]


class YamlConfigError(ValueError):
    """A configuration text was refused; `line` is 1-based and `path` is where in the document the problem is."""

    def __init__(self, source: str, line: int, reason: str, path: Path_ = ()) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source, self.line, self.reason, self.path = source, line, reason, path


def _lines(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    # Remember where every key and value starts so that errors can name a line.
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            _lines(value_node, (*path, key_node.value), out)
            out[(*path, key_node.value)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), out)


def line_for(lines: Mapping[Path_, int], path: Path_) -> int:
    """Return the line of `path`, or of its nearest ancestor that has one."""
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _check_duplicate_keys(node: yaml.Node, source: str, path: Path_ = ()) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.value in seen:
                line = key_node.start_mark.line + 1
                raise YamlConfigError(source, line, f"duplicate key {key_node.value!r}", (*path, key_node.value))
            seen.add(key_node.value)
            _check_duplicate_keys(value_node, source, (*path, key_node.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicate_keys(item, source, (*path, index))


def _culprit(err: jsonschema.ValidationError, path: Path_, lines: Mapping[Path_, int]) -> Path_:
    # Point at the offending key itself when the error is about a key rather than a value.
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        extras = [k for k in err.instance if k not in err.schema.get("properties", {})]  # type: ignore[union-attr]
        return (*path, extras[0]) if extras else path
    if isinstance(err.instance, str) and (*path, err.instance) in lines:
        return (*path, err.instance)
    return path


def parse_validated(text: str, source: str, schema: Mapping[str, Any]) -> tuple[Any, dict[Path_, int]]:
    """Return the document and the line of every path in it, or raise YamlConfigError with file, line and reason."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlConfigError(source, (mark.line + 1) if mark else 1, f"invalid YAML: {exc.problem}") from None
    if root is None:
        raise YamlConfigError(source, 1, "the file is empty")
    _check_duplicate_keys(root, source)
    data = yaml.safe_load(text)
    lines: dict[Path_, int] = {}
    _lines(root, (), lines)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = tuple(err.absolute_path)
        where = "/".join(str(p) for p in path) or "(top level)"
        message = err.message
        if err.validator == "pattern" and isinstance(err.schema, dict) and "description" in err.schema:
            # A bare regular expression tells the author little; the schema says what the value should look like.
            message = f"{err.instance!r} is not {err.schema['description']}"
        raise YamlConfigError(source, line_for(lines, _culprit(err, path, lines)), f"{where}: {message}", path)
    return data, lines
