"""Read SSOT YAML with line numbers, validate it against its schemas, collect every problem."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_DIR = "schemas"
MAX_FILE_BYTES = 1 << 20  # an SSOT file is a page of YAML; 1 MiB is already absurd
Path_ = tuple  # a JSON path: tuple of str keys and int indexes


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the SSOT, located by file, line and JSON path."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SsotInvalid(Exception):
    """The SSOT could not be loaded; `problems` holds every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(map(str, self.problems)))


def json_path(path: Path_) -> str:
    """Render ('routes', 'a.b', 0) as $.routes['a.b'][0]."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


@dataclass
class SourceFile:
    """One parsed SSOT file: its data and the line of every node, by JSON path."""

    name: str  # as shown to people, e.g. ssot/hosts.yaml
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    # schema_problems() of this file by schema: the loader's check and the ssot gate's are one
    # (data is never changed once parsed; at 100 hosts a check of stacks.yaml costs ~0.1 s)
    checked: dict[str, list] = field(default_factory=dict, repr=False, compare=False)

    def line_of(self, path: Path_) -> int:
        """Line of the node at path, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and aliases; nodes keep where they start."""

    def compose_node(self, parent, index):
        # Aliases let a few lines expand exponentially (the "billion laughs"); the SSOT
        # has no use for them, so they are refused before anything is built.
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not allowed in the SSOT", event.start_mark)
        return super().compose_node(parent, index)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, bool, float)) or key is None:
            raise yaml.constructor.ConstructorError(
                None, None, f"mapping key {key!r} is not a plain scalar", key_node.start_mark)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"duplicate key {key!r} (YAML would silently keep only the last one)",
                key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# Dates stay strings: the schema checks their format, and JSON Schema knows no datetime type.
_LineLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _CLineLoader(yaml._yaml.CParser, _LineLoader):  # type: ignore[misc,name-defined]
    """_LineLoader on libyaml's scanner and parser: the same events, so the same nodes, checks
    and values, in a fifth of the time (0.4 s of a 100-host SSOT's load). Composing stays
    _LineLoader's, where aliases are refused; any error is reported by _LineLoader itself."""

    check_node = yaml.composer.Composer.check_node
    get_node = yaml.composer.Composer.get_node
    get_single_node = yaml.composer.Composer.get_single_node

    def __init__(self, stream: str):
        yaml._yaml.CParser.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


LOADERS = (_CLineLoader, _LineLoader) if yaml.__with_libyaml__ else (_LineLoader,)


def _compose(text: str) -> tuple[yaml.Node | None, Any]:
    """(node, data) of one YAML document; a failure is raised as _LineLoader raises it (its
    messages, not libyaml's)."""
    for loader_class in LOADERS:
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            return node, loader.construct_document(node) if node is not None else None
        except (yaml.YAMLError, RecursionError):
            if loader_class is LOADERS[-1]:
                raise
        finally:
            loader.dispose()
    raise AssertionError("not reached")


def _index_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            key_path = path + (_scalar_key(key_node, key),)
            _index_lines(value_node, key_path, lines)
            lines[key_path] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), lines)


def _scalar_key(key_node: yaml.Node, raw: str) -> Any:
    # Keys are matched against the constructed data, so resolve ints the way YAML does.
    if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:int":
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


def parse_file(path: Path, shown_as: str) -> SourceFile:
    """Parse one YAML file; raise SsotInvalid with a located problem if it cannot be read."""
    def fail(message: str, line: int = 0) -> SsotInvalid:
        return SsotInvalid([Problem(shown_as, line, "", message)])

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise fail(f"file is {size} bytes; an SSOT file may be at most {MAX_FILE_BYTES}")
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from None
    if b"\0" in raw:
        raise fail("not a text file (it contains NUL bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise fail(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})", line) from None
    try:
        node, data = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = exc.problem or "invalid YAML"
        if "\\t" in what or "tab" in what:
            what += " (YAML indentation must use spaces, not tabs)"
        raise fail(f"invalid YAML: {what}", line) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise fail(f"invalid YAML: {exc.__class__.__name__}") from None
    if data is None:
        raise fail("file is empty; expected a mapping of top-level keys")
    if not isinstance(data, dict):
        raise fail(f"expected a mapping of top-level keys, got a {type(data).__name__}", 1)
    lines: dict[Path_, int] = {}
    _index_lines(node, (), lines)
    return SourceFile(shown_as, data, lines)


def load_schemas(schema_dir: Path) -> dict[str, dict]:
    """Every schema by the SSOT file stem it validates (hosts.schema.json -> hosts)."""
    schemas = {}
    for p in sorted(schema_dir.glob("*.schema.json")):
        schemas[p.name.removesuffix(".schema.json")] = json.loads(p.read_text())
    return schemas


_YAML_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "mapping",
               list: "list", type(None): "null"}
_FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def schema_problems(src: SourceFile, schema: dict) -> list[Problem]:
    """Every schema violation in one file, each with the line it sits on."""
    key = json.dumps(schema, sort_keys=True)
    if key not in src.checked:
        validator = jsonschema.Draft202012Validator(schema, format_checker=_FORMATS)
        src.checked[key] = [p for err in validator.iter_errors(src.data) for p in _explain(src, err)]
    return list(src.checked[key])


def _explain(src: SourceFile, err: jsonschema.ValidationError) -> list[Problem]:
    # oneOf/anyOf errors say "is not valid under any of the given schemas"; the best
    # sub-error tells the person what to fix.
    if err.context:
        best = jsonschema.exceptions.best_match(err.context)
        return _explain(src, best)
    path = tuple(err.absolute_path)
    if "propertyNames" in err.relative_schema_path:  # the key itself is wrong: point at it
        path += (err.instance,)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        return [Problem(src.name, src.line_of(path + (k,)), json_path(path + (k,)),
                        f"unknown key {k!r} (allowed: {', '.join(sorted(allowed))})") for k in extra]
    return [Problem(src.name, src.line_of(path), json_path(path), _message(err))]


def _message(err: jsonschema.ValidationError) -> str:
    value = err.instance
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    if len(shown) > 80:
        shown = shown[:77] + "..."
    v = err.validator
    if v == "format":
        article = "an" if err.validator_value[0] in "aeiou" else "a"
        label = {"ipv4": "IPv4 address", "date-time": "RFC 3339 date-time", "uri": "URL",
                 "uuid": "UUID"}.get(err.validator_value, err.validator_value)
        if err.validator_value in ("ipv4", "uri", "uuid"):
            article = "an" if label[0] in "AEIOU" else "a"
        return f"{shown} is not {article} {label}"
    if v == "pattern":
        return f"{shown} does not match {err.validator_value!r} (allowed characters/shape)"
    if v == "enum":
        return f"{shown} is not one of {', '.join(map(repr, err.validator_value))}"
    if v == "type":
        expected = err.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{shown} is a {_YAML_TYPES.get(type(value), type(value).__name__)}, expected {expected}"
    if v == "required":
        return err.message.replace("is a required property", "is required")
    return f"{err.message}"
