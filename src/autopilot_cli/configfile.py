"""The ops-edited config file: load it with line numbers, validate it, publish it.

This module owns everything between ``config/communities.yaml`` and the JSON
document the functions read:

* :func:`load_yaml_with_lines` reads the file strictly (UTF-8, at most 1 MiB, no
  duplicate keys, text-only keys, a bounded alias expansion) and keeps the YAML node
  tree so that any path into the document (``("communities", 0, "jobs", 1,
  "cron")``) maps back to a line and column;
* :func:`validate_file` runs the JSON Schema (``config/schema.json``, generated
  from :mod:`autopilot.config.document`) for every shape problem, then the checks a
  schema cannot say (:func:`autopilot.config.model.semantic_issues`), then schedule
  warnings (quiet hours, DST gaps and overlaps) computed with the scheduler's own
  rules, and returns every finding with its position, compiler style;
* :func:`published_document` turns a loaded file into the deterministic JSON bytes
  ``autopilot config push`` uploads;
* :func:`cmd_validate` is the ``autopilot config validate`` command.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import yaml
from autopilot.clock import get_clock
from autopilot.config.document import (
    ENUM_NOUNS,
    MIN_ITEMS_MESSAGES,
    PATTERN_MESSAGES,
    secret_key_message,
)
from autopilot.config.model import (
    LOTTERY_ACTIONS,
    METRICS_ACTION,
    Community,
    Config,
    Job,
    semantic_issues,
)
from autopilot.errors import AutopilotError
from autopilot.lottery.schedule import lottery_schedule_issues
from autopilot.scheduler.rules import DST_GAP, DST_OVERLAP, Occurrence, occurrences_between
from autopilot.timeutil import iso_utc, local_wall, to_utc, zone
from croniter import croniter
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

#: A path into the document: mapping keys and list indexes.
DocPath = tuple[str | int, ...]

#: Largest config file accepted. A real config is a few tens of KiB; anything
#: bigger is a mistake (a log pasted in, a binary) and would slow every function
#: that parses the published document on a cold start.
MAX_CONFIG_BYTES = 1 << 20
#: Most values the document may hold once YAML aliases are expanded. Aliases share
#: nodes, so a small file can expand exponentially ("billion laughs"); the schema
#: check and the published JSON both walk the expanded tree.
MAX_EXPANDED_VALUES = 200_000
#: Deepest nesting accepted; the format itself is about 8 levels deep.
MAX_DEPTH = 64
#: How far ahead quiet-hours warnings look: two weeks covers weekly jobs twice.
QUIET_LOOKAHEAD = timedelta(days=14)
#: How far ahead DST warnings look: a year sees every transition of every zone.
DST_LOOKAHEAD = timedelta(days=366)

#: The JSON Schema of the format. It lives beside the config it describes (editors
#: and ops tools point at it there); the CLI runs from the source tree.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.json"

_MERGE_TAG = "tag:yaml.org,2002:merge"
_YAML_KINDS = {
    "tag:yaml.org,2002:int": "integer",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:bool": "boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "date",
}
_JSON_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "null": "null",
}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One error or warning about a config file, with its position.

    ``line`` and ``column`` are 1-based (``None`` for problems with the file as a
    whole, such as its size); ``path`` locates the value in the document.
    """

    file: str
    line: int | None
    column: int | None
    path: DocPath
    message: str
    severity: str = "error"

    @property
    def location(self) -> str:
        """The path as ``communities[0].jobs[1].cron`` (empty for the whole document)."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column or 1}"
        location = f"{self.location}: " if self.path else ""
        return f"{where}: {self.severity}: {location}{self.message}"


def _sort_key(finding: Finding) -> tuple[int, int, int]:
    return (finding.line or 0, finding.column or 0, 0 if finding.severity == "error" else 1)


class ConfigFileError(AutopilotError):
    """The file cannot be read as a config document (size, encoding, YAML syntax, keys)."""

    def __init__(self, findings: Sequence[Finding]):
        self.findings = sorted(findings, key=_sort_key)
        super().__init__("\n".join(str(f) for f in self.findings))


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedConfig:
    """A config file read into plain Python, with the node tree to find positions.

    ``doc`` is what ``yaml.safe_load`` would return; ``raw`` the exact bytes read
    (hashed into the published document); ``root`` the composed YAML node tree.
    """

    source: str
    raw: bytes
    doc: Any
    root: yaml.Node | None = field(default=None, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of the file's bytes: ties a published document to its source."""
        return hashlib.sha256(self.raw).hexdigest()

    def node_at(self, path: DocPath) -> yaml.Node | None:
        """The YAML node of the value at ``path``, or ``None`` if the file has none."""
        found = self._walk(path)
        return found[1] if found[2] == len(path) else None

    def position(self, path: DocPath) -> tuple[int, int]:
        """1-based (line, column) of the value at ``path``.

        A path that does not exist in the file (a missing key) resolves to its
        nearest existing ancestor, which is where the key would have to be added.
        A value written on the line after its key (a block mapping or list) is
        reported at the key.
        """
        key_node, node, _ = self._walk(path)
        if node is None:
            return 1, 1
        mark = node.start_mark
        if key_node is not None and (
            (isinstance(node, yaml.CollectionNode) and not node.flow_style)
            or mark.line != key_node.start_mark.line
        ):
            mark = key_node.start_mark
        return mark.line + 1, mark.column + 1

    def _walk(self, path: DocPath) -> tuple[yaml.Node | None, yaml.Node | None, int]:
        """(key node, value node, depth reached) of the deepest prefix of ``path`` found."""
        key_node: yaml.Node | None = None
        node = self.root
        for depth, part in enumerate(path):
            child: tuple[yaml.Node | None, yaml.Node] | None = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                # Merged keys precede explicit ones after flattening and the last
                # occurrence is the one YAML keeps, so search from the end.
                for k, v in reversed(node.value):
                    if isinstance(k, yaml.ScalarNode) and k.value == part:
                        child = (k, v)
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                child = (None, node.value[part])
            if child is None:
                return key_node, node, depth
            key_node, node = child
        return key_node, node, len(path)


def load_yaml_with_lines(
    path_or_text: str | os.PathLike[str] | bytes, *, source: str | None = None
) -> LoadedConfig:
    """Read a config file (or its text) strictly, keeping line numbers.

    ``path_or_text`` is a path (``os.PathLike``, or a ``str`` without a newline),
    the file's text (a ``str`` with a newline) or its raw bytes. ``source`` names it
    in findings (default: the path, ``<string>`` or ``<bytes>``).

    Raises :class:`ConfigFileError` listing every problem that makes the document
    unreadable: unreadable or oversized file, invalid UTF-8, YAML syntax errors,
    duplicate keys (PyYAML would silently keep the last), keys that are not text,
    aliases that expand too far or recurse.
    """
    raw, size, source = _read_source(path_or_text, source)
    if size > MAX_CONFIG_BYTES:
        raise ConfigFileError(
            [
                Finding(
                    source,
                    None,
                    None,
                    (),
                    f"file is {size:,} bytes; a config file may be at most 1 MiB "
                    f"({MAX_CONFIG_BYTES:,} bytes). Is this the right file?",
                )
            ]
        )
    text = _decode(raw, source)
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # checks for unprintable characters already
        root = loader.get_single_node()
        if root is not None:
            findings = _NodeChecker(loader, source).check(root)
            if findings:
                raise ConfigFileError(findings)
            doc = loader.construct_document(root)
        else:
            doc = None
    except yaml.MarkedYAMLError as exc:
        raise ConfigFileError([_syntax_finding(exc, source)]) from exc
    except yaml.reader.ReaderError as exc:
        line, column = _line_col(text, exc.position)
        raise ConfigFileError(
            [
                Finding(
                    source,
                    line,
                    column,
                    (),
                    f"character {_codepoint(exc.character)} is not allowed in a YAML file "
                    "(control characters other than tab and newline are refused)",
                )
            ]
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigFileError([Finding(source, None, None, (), f"YAML error: {exc}")]) from exc
    except RecursionError as exc:
        raise ConfigFileError(
            [Finding(source, None, None, (), "the document is nested too deeply")]
        ) from exc
    finally:
        if loader is not None:
            loader.dispose()
    return LoadedConfig(source=source, raw=raw, doc=doc, root=root)


def _read_source(
    path_or_text: str | os.PathLike[str] | bytes, source: str | None
) -> tuple[bytes, int, str]:
    """(bytes, total size, display name); reads at most one byte past the limit."""
    if isinstance(path_or_text, bytes):
        return path_or_text, len(path_or_text), source or "<bytes>"
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        raw = path_or_text.encode("utf-8", errors="surrogateescape")
        return raw, len(raw), source or "<string>"
    name = source or os.fspath(path_or_text)
    try:
        with Path(path_or_text).open("rb") as handle:
            # Never pull a huge file into memory just to refuse it.
            size = os.fstat(handle.fileno()).st_size
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigFileError(
            [Finding(name, None, None, (), f"cannot read the file: {exc.strerror or exc}")]
        ) from exc
    return raw, max(size, len(raw)), name


def _decode(raw: bytes, source: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        raise ConfigFileError(
            [
                Finding(
                    source,
                    line,
                    column,
                    (),
                    f"the file is not valid UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded "
                    "(save the file as UTF-8; GBK/GB2312 and Latin-1 are not accepted)",
                )
            ]
        ) from exc
    # A byte-order mark is legal UTF-8 but not content.
    return text.removeprefix("\ufeff")


def _codepoint(character: int | str) -> str:
    number = character if isinstance(character, int) else ord(character)
    return f"U+{number:04X}"


def _line_col(text: str, position: int) -> tuple[int, int]:
    line = text.count("\n", 0, position) + 1
    return line, position - (text.rfind("\n", 0, position) + 1) + 1


def _syntax_finding(exc: yaml.MarkedYAMLError, source: str) -> Finding:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    # Scanner and parser errors are syntax; composer and constructor errors are
    # about what the syntax builds (several documents, an unknown !Tag).
    syntax = isinstance(exc, yaml.scanner.ScannerError | yaml.parser.ParserError)
    message = f"YAML {'syntax error' if syntax else 'error'}: "
    context_line = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
    if exc.context and exc.problem and exc.problem.startswith("but "):
        message += f"{exc.context}{context_line}, {exc.problem}"  # reads as one sentence
    elif exc.context and exc.problem:
        message += f"{problem} ({exc.context}{context_line})"
    else:
        message += problem
    if "'\\t'" in problem:
        message += "; YAML indentation must use spaces, not tabs"
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        message += "; this file takes plain YAML: no !Tags"
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    return Finding(source, line, column, (), message)


class _NodeChecker:
    """Checks the composed node tree before construction.

    Construction loses what we need to see: PyYAML keeps the last of two equal keys
    silently, and merge keys are flattened away. Aliases are followed through a
    memo so that shared nodes are sized once and "billion laughs" is measured, not
    expanded.
    """

    def __init__(self, loader: yaml.SafeLoader, source: str):
        self._loader = loader
        self._source = source
        self._findings: list[Finding] = []
        self._sizes: dict[int, int] = {}
        self._open: set[int] = set()

    def check(self, root: yaml.Node) -> list[Finding]:
        total = self._size(root, (), 0)
        if total > MAX_EXPANDED_VALUES:
            self._add(
                root,
                (),
                f"the document holds {total:,} values once YAML aliases are "
                f"expanded (limit {MAX_EXPANDED_VALUES:,}); use fewer aliases",
            )
        return self._findings

    def _add(self, node: yaml.Node, path: DocPath, message: str) -> None:
        mark = node.start_mark
        self._findings.append(Finding(self._source, mark.line + 1, mark.column + 1, path, message))

    def _size(self, node: yaml.Node, path: DocPath, depth: int) -> int:
        key = id(node)
        if key in self._sizes:
            return self._sizes[key]
        if key in self._open:
            self._add(
                node,
                path,
                "an alias refers to a value that contains it (a recursive "
                "structure cannot be published as JSON)",
            )
            return 0
        if depth > MAX_DEPTH:
            self._add(node, path, f"the document is nested deeper than {MAX_DEPTH} levels")
            self._sizes[key] = 0
            return 0
        self._open.add(key)
        size = 1
        if isinstance(node, yaml.MappingNode):
            size += self._mapping(node, path, depth)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                size += self._size(item, (*path, index), depth + 1)
        elif node.tag == "tag:yaml.org,2002:timestamp":
            self._check_timestamp(node, path)
        self._open.discard(key)
        self._sizes[key] = size
        return size

    def _mapping(self, node: yaml.MappingNode, path: DocPath, depth: int) -> int:
        size = 0
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                # `<<: *defaults` is legitimate YAML; the merged keys are checked
                # where the anchored mapping is defined.
                size += self._size(value_node, path, depth + 1)
                continue
            name = self._key_text(key_node, path)
            child_path = (*path, name) if name is not None else path
            if name is not None:
                if name in seen:
                    first = seen[name].start_mark.line + 1
                    self._add(
                        key_node,
                        child_path,
                        f"duplicate key {name!r} (first on line {first}); YAML would "
                        "silently keep only the last value",
                    )
                else:
                    seen[name] = key_node
            size += self._size(value_node, child_path, depth + 1)
        return size

    def _key_text(self, key_node: yaml.Node, path: DocPath) -> str | None:
        if not isinstance(key_node, yaml.ScalarNode):
            self._add(key_node, path, "mapping keys must be plain text, not a list or mapping")
            return None
        try:
            value = self._loader.construct_object(key_node)
        except (yaml.YAMLError, ValueError):
            value = None
        if isinstance(value, str):
            return value
        kind = _YAML_KINDS.get(key_node.tag, "non-text value")
        self._add(
            key_node,
            path,
            f"key {key_node.value!r} is read by YAML as {_article(kind)} {kind}; "
            f'keys must be text: write "{key_node.value}" in quotes',
        )
        return None

    def _check_timestamp(self, node: yaml.ScalarNode, path: DocPath) -> None:
        # `2026-13-45` matches YAML's date pattern and then fails with a bare
        # ValueError during construction; catch it here, where the line is known.
        try:
            self._loader.construct_object(node)
        except ValueError as exc:
            self._add(
                node,
                path,
                f"YAML reads the unquoted {node.value} as a date, but it is "
                f"not a valid one ({exc}); write it in quotes if it is text",
            )


# --------------------------------------------------------------------------- validation


@dataclass
class ValidationReport:
    """Everything ``validate`` found in one file.

    ``errors`` and ``warnings`` are sorted by position; ``config`` is the parsed
    config when there is no error.
    """

    file: str
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    config: Config | None = None
    loaded: LoadedConfig | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when the file has no error (warnings are allowed)."""
        return not self.errors

    @property
    def findings(self) -> list[Finding]:
        """Errors and warnings together, in file order."""
        return sorted([*self.errors, *self.warnings], key=_sort_key)

    def summary(self) -> str:
        """One line: ``file: OK (2 communities, 6 jobs), 1 warning`` or ``file: 3 errors``.

        Jobs are the ones written under ``jobs:``; lotteries (whose steps the
        dispatcher runs as derived jobs) are counted apart.
        """
        warnings = f", {_plural(len(self.warnings), 'warning')}" if self.warnings else ""
        if self.ok and self.config is not None:
            derived = {*LOTTERY_ACTIONS.values(), METRICS_ACTION}
            communities = self.config.communities
            jobs = sum(1 for c in communities for j in c.jobs if j.action not in derived)
            lotteries = sum(len(c.lotteries) for c in communities)
            counts = (
                f"{_plural(len(communities), 'community', 'communities')}, "
                f"{_plural(jobs, 'job')}"
                + (f", {_plural(lotteries, 'lottery', 'lotteries')}" if lotteries else "")
            )
            return f"{self.file}: OK ({counts}){warnings}"
        return f"{self.file}: {_plural(len(self.errors), 'error')}{warnings}"


@dataclass(frozen=True)
class _Candidate:
    """A finding before it has a position."""

    path: DocPath
    message: str
    severity: str = "error"


def validate_file(path: str | os.PathLike[str], *, now: datetime | None = None) -> ValidationReport:
    """Validate the config file at ``path``: YAML, schema, semantics, schedule warnings.

    ``now`` (aware; default: the current time) anchors the look-ahead of the
    quiet-hours (14 days) and DST (366 days) warnings.
    """
    source = os.fspath(path)
    try:
        loaded = load_yaml_with_lines(Path(source), source=source)
    except ConfigFileError as exc:
        return ValidationReport(file=source, errors=list(exc.findings))
    return validate_loaded(loaded, now=now)


def validate_loaded(loaded: LoadedConfig, *, now: datetime | None = None) -> ValidationReport:
    """Validate an already loaded document (see :func:`validate_file`)."""
    now_utc = to_utc(now if now is not None else get_clock().now())
    report = ValidationReport(file=loaded.source, loaded=loaded)
    if loaded.doc is None:
        report.errors.append(
            Finding(
                loaded.source,
                1,
                1,
                (),
                "the file is empty: expected a mapping with 'version' and 'communities'",
            )
        )
        return report

    schema_candidates = _schema_candidates(loaded)
    config, semantic = _semantic_candidates(loaded.doc)
    candidates = schema_candidates + semantic
    if config is not None and not schema_candidates:
        candidates += _schedule_warnings(config, loaded.doc, now_utc)

    for candidate in candidates:
        line, column = loaded.position(candidate.path)
        finding = Finding(
            loaded.source, line, column, candidate.path, candidate.message, candidate.severity
        )
        (report.errors if candidate.severity == "error" else report.warnings).append(finding)
    report.errors.sort(key=_sort_key)
    report.warnings.sort(key=_sort_key)
    if report.ok:
        report.config = config
    return report


@cache
def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """The config JSON Schema (draft 2020-12), read once."""
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def _schema_candidates(loaded: LoadedConfig) -> list[_Candidate]:
    out: list[_Candidate] = []
    for error in _validator().iter_errors(loaded.doc):
        out.extend(_convert_schema_error(error, loaded))
    unique: dict[tuple[DocPath, str], _Candidate] = {}
    for candidate in out:
        unique.setdefault((candidate.path, candidate.message), candidate)
    return list(unique.values())


def _convert_schema_error(error: ValidationError, loaded: LoadedConfig) -> list[_Candidate]:
    """Turn one jsonschema error into findings that read like the semantic ones."""
    path: DocPath = tuple(error.absolute_path)
    instance = error.instance
    keyword = error.validator
    expected = error.validator_value
    if keyword == "required" and isinstance(instance, Mapping):
        # jsonschema yields one error per missing key but names it only in prose.
        return [
            _Candidate((*path, key), f"required key {key!r} is missing")
            for key in expected
            if key not in instance
        ]
    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        allowed = sorted(error.schema.get("properties", {}))
        out = []
        for key in instance:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(
                _Candidate(
                    (*path, key),
                    f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}",
                )
            )
        return out
    if keyword == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_JSON_TYPES.get(t, t) for t in types)
        hint = _yaml_hint(loaded.node_at(path), instance, types)
        message = f"expected {wanted}, got {_describe(instance)}"
        if not path:
            message = "the config must be a mapping with 'version' and 'communities'"
        return [_Candidate(path, f"{message} ({hint})" if hint else message)]
    if keyword == "enum":
        known = ", ".join(str(v) for v in expected)
        if path == ("version",):
            return [
                _Candidate(
                    path, f"unsupported config version {instance!r} (this release reads {known})"
                )
            ]
        noun = ENUM_NOUNS.get(str(path[-1])) if path else None
        if noun is not None:
            return [_Candidate(path, f"unknown {noun} {instance!r} (known: {known})")]
        return [_Candidate(path, f"{instance!r} is not allowed here (allowed: {known})")]
    if keyword == "not" and path and isinstance(path[-1], str):
        # The schema forbids secret-looking channel keys: say where the secret goes.
        channel = _value_at(loaded.doc, path[:-1])
        community = _value_at(loaded.doc, path[:2])
        return [
            _Candidate(
                path,
                secret_key_message(
                    path[-1],
                    community.get("id") if isinstance(community, Mapping) else None,
                    channel.get("id") if isinstance(channel, Mapping) else None,
                ),
            )
        ]
    if keyword == "anyOf":
        # ``X or null`` (quiet_hours): explain the mistake against X, not against null.
        out: list[_Candidate] = []
        for sub in error.context or ():
            if sub.validator == "type" and sub.validator_value == "null":
                continue
            out.extend(_convert_schema_error(sub, loaded))
        if out:
            return out
    if keyword in ("minimum", "maximum"):
        bound = "at least" if keyword == "minimum" else "at most"
        return [_Candidate(path, f"must be {bound} {expected}, got {instance!r}")]
    if keyword == "const":
        return [_Candidate(path, f"must be {expected!r}, got {instance!r}")]
    if keyword == "pattern":
        text = PATTERN_MESSAGES.get(expected, f"does not match the pattern {expected}")
        return [_Candidate(path, f"{instance!r} {text}")]
    if keyword == "minItems":
        empty = MIN_ITEMS_MESSAGES.get(str(path[-1]) if path else "", "must not be empty")
        what = empty if expected == 1 else f"needs at least {expected} entries"
        return [_Candidate(path, what)]
    if keyword == "minLength":
        return [_Candidate(path, "must not be empty")]
    if keyword == "maxLength":
        return [_Candidate(path, f"is {len(instance)} characters long; the limit is {expected}")]
    if keyword == "uniqueItems":
        return [_Candidate(path, "lists the same value more than once")]
    return [_Candidate(path, error.message)]


def _describe(value: Any) -> str:
    """``the integer 1260``, ``a list``, ``null (an empty value)`` for messages."""
    if value is None:
        return "null (an empty value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, datetime | date | time):
        return f"the date {value.isoformat()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _yaml_hint(node: yaml.Node | None, value: Any, types: list[str]) -> str:
    """Explain a YAML 1.1 surprise (unquoted 21:00, no, 2026-01-01) behind a type error."""
    if "string" not in types or not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return ""
    written = node.value
    if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and ":" in written:
        hours, _, minutes = written.partition(":")
        # Suggest the zero-padded form: "4:00" quoted would still not be HH:MM.
        suggested = f"{int(hours):02d}:{minutes}" if hours.isdigit() else written
        return (
            f"YAML 1.1 reads the unquoted {written} as the base-60 number {value}; "
            f'write "{suggested}" in quotes'
        )
    if node.tag == "tag:yaml.org,2002:null":
        return "the value is missing" if not written else f"YAML reads {written} as null"
    kind = _YAML_KINDS.get(node.tag)
    if kind is None:
        return ""
    return (
        f"YAML reads the unquoted {written} as {_article(kind)} {kind}; "
        f'write "{written}" in quotes if it is text'
    )


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _value_at(doc: Any, path: DocPath) -> Any:
    for part in path:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _semantic_candidates(doc: Any) -> tuple[Config | None, list[_Candidate]]:
    """The model's checks a schema cannot say (references, duplicates, cron, zones).

    They run on every part of the document that has the right shape, so they never
    repeat a schema finding: the two lists are simply joined.
    """
    config, issues = semantic_issues(doc, lottery_checks=(lottery_schedule_issues,))
    return config, [_Candidate(i.path, i.message, i.severity) for i in issues]


# --------------------------------------------------------------------------- schedule warnings


def _schedule_warnings(
    config: Config, doc: Mapping[str, Any], now_utc: datetime
) -> list[_Candidate]:
    """Warnings about when jobs actually fire: inside quiet hours, in DST gaps/overlaps."""
    out: list[_Candidate] = []
    transitions_by_zone: dict[str, list[_Transition]] = {}
    for community in config.communities:
        community_index = _index_by_id(doc.get("communities"), community.id)
        tz = zone(community.timezone)
        if community.timezone not in transitions_by_zone:
            transitions_by_zone[community.timezone] = _transitions(
                tz, now_utc, now_utc + DST_LOOKAHEAD
            )
        transitions = transitions_by_zone[community.timezone]
        jobs_raw = doc["communities"][community_index].get("jobs")
        lottery_crons = _lottery_cron_paths(community, doc["communities"][community_index])
        for job in community.jobs:
            if not job.enabled:
                continue  # a paused job fires nothing; its warnings would be noise
            path: DocPath
            if job.id in lottery_crons:
                path = ("communities", community_index, *lottery_crons[job.id])
            elif job.action in LOTTERY_ACTIONS.values() or job.action == METRICS_ACTION:
                continue  # expire, the daily snapshot: fixed jobs, nothing ops wrote
            else:
                path = (
                    "communities",
                    community_index,
                    "jobs",
                    _index_by_id(jobs_raw, job.id),
                    "cron",
                )
            quiet = _quiet_warning(community, job, tz, now_utc)
            if quiet:
                out.append(_Candidate(path, quiet, "warning"))
            for transition in transitions:
                message = _dst_warning(community, job, tz, transition)
                if message:
                    out.append(_Candidate(path, message, "warning"))
    return out


def _lottery_cron_paths(community: Community, raw: Mapping[str, Any]) -> dict[str, DocPath]:
    """Where the cron of each lottery's derived open/close/draw job is written."""
    out: dict[str, DocPath] = {}
    for lottery in community.lotteries:
        index = _index_by_id(raw.get("lotteries"), lottery.id)
        for step, key in (("open", "opens"), ("close", "closes"), ("draw", "draws")):
            out[lottery.job_id(step)] = ("lotteries", index, "schedule", key)
    return out


def _index_by_id(items: Any, item_id: str) -> int:
    for index, item in enumerate(items or ()):
        if isinstance(item, Mapping) and item.get("id") == item_id:
            return index
    raise LookupError(item_id)  # unreachable: the config was parsed from ``items``


def _quiet_warning(community: Community, job: Job, tz: ZoneInfo, now_utc: datetime) -> str | None:
    quiet = community.quiet_hours
    if quiet is None or not job.sends_messages:
        return None
    occurrences = occurrences_between(
        community.id, job, tz, quiet, now_utc, now_utc + QUIET_LOOKAHEAD
    )
    times: dict[str, str] = {}
    for occ in occurrences:
        if occ.quiet is None:
            continue
        verdict = (
            "dropped"
            if occ.quiet == "dropped"
            else f"deferred to {local_wall(occ.due_utc, tz):%H:%M}"
        )
        times.setdefault(f"{occ.nominal_local:%H:%M}", verdict)
    if not times:
        return None
    window = f"{quiet.start:%H:%M}–{quiet.end:%H:%M}"
    verdicts = sorted(set(times.values()))
    start_minute = quiet.start.hour * 60 + quiet.start.minute

    def in_window_order(hhmm: str) -> int:  # 22:00 before 06:59 in a 22:00–07:00 window
        return (int(hhmm[:2]) * 60 + int(hhmm[3:]) - start_minute) % (24 * 60)

    when = _join_times(sorted(times, key=in_window_order), unit="distinct times")
    return (
        f"fires at {when} local, inside quiet hours {window}: {' or '.join(verdicts)} "
        f"(quiet_hours: {job.quiet_hours})"
    )


@dataclass(frozen=True)
class _Transition:
    """A change of a zone's UTC offset at ``at_utc``."""

    at_utc: datetime
    before: timedelta
    after: timedelta


def _transitions(tz: ZoneInfo, start_utc: datetime, end_utc: datetime) -> list[_Transition]:
    """Offset changes of ``tz`` in ``[start_utc, end_utc)``, to the second.

    Hour steps find every change (no zone changes twice within an hour); bisection
    then pins it. About 9,000 offset look-ups a year, milliseconds.
    """
    out: list[_Transition] = []
    step = timedelta(hours=1)
    t = start_utc
    offset = t.astimezone(tz).utcoffset()
    while t < end_utc:
        nxt = t + step
        next_offset = nxt.astimezone(tz).utcoffset()
        if next_offset != offset and offset is not None and next_offset is not None:
            lo, hi = t, nxt
            while hi - lo > timedelta(seconds=1):
                mid = (lo + (hi - lo) / 2).replace(microsecond=0)
                if mid <= lo:
                    break
                if mid.astimezone(tz).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            out.append(_Transition(hi, offset, next_offset))
        offset = next_offset
        t = nxt
    return out


def _dst_warning(
    community: Community, job: Job, tz: ZoneInfo, transition: _Transition
) -> str | None:
    """Say what the scheduler does with the job's times skipped or repeated at ``transition``."""
    naive = transition.at_utc.astimezone(UTC).replace(tzinfo=None)
    wall_before = naive + transition.before  # the wall clock the change starts from
    wall_after = naive + transition.after  # the wall clock it jumps to
    gap = transition.after > transition.before
    lo, hi = (wall_before, wall_after) if gap else (wall_after, wall_before)
    nominals = _cron_times(job.cron, lo, hi)
    if not nominals:
        return None
    occurrences = occurrences_between(
        community.id,
        job,
        tz,
        community.quiet_hours,
        transition.at_utc - timedelta(days=2),
        transition.at_utc + timedelta(days=2),
    )
    affected = [o for o in occurrences if o.nominal_local in set(nominals)]
    shift = _format_shift(abs(transition.after - transition.before))
    day = f"{_WEEKDAYS[lo.weekday()]} {lo.date().isoformat()}"
    when = _join_times([f"{n:%H:%M}" for n in nominals], unit="runs")
    name_before = (transition.at_utc - timedelta(seconds=1)).astimezone(tz).tzname()
    name_after = transition.at_utc.astimezone(tz).tzname()
    if gap:
        fired = [o for o in affected if o.dst == DST_GAP]
        head = (
            f"on {day} clocks go forward {shift} at {wall_before:%H:%M}, so {when} "
            f"{'does' if len(nominals) == 1 else 'do'} not exist that day: "
        )
        if not fired:
            return head + (
                f"{'the run is' if len(nominals) == 1 else 'these runs are'} skipped "
                f"(the {wall_after:%H:%M} run stands in)"
            )
        instead = f"{local_wall(fired[0].scheduled_utc, tz):%H:%M} {name_after}"
        body = (
            f"the run fires at {instead} instead"
            if len(nominals) == 1
            else f"one run fires at {instead}, the other {len(nominals) - 1} are skipped"
        )
        return head + body + _quiet_note(fired[0], tz, plural=False)
    repeated = [o for o in affected if o.dst == DST_OVERLAP]
    head = (
        f"on {day} clocks go back {shift} at {wall_before:%H:%M}, so "
        f"{lo:%H:%M}–{hi:%H:%M} happens twice: "
    )
    body = (
        f"the {when} run fires once, at the first {when} ({name_before})"
        if len(nominals) == 1
        else f"the runs at {when} fire once each, during the first pass ({name_before})"
    )
    return (
        head + body + (_quiet_note(repeated[0], tz, plural=len(nominals) > 1) if repeated else "")
    )


def _quiet_note(occurrence: Occurrence, tz: ZoneInfo, *, plural: bool) -> str:
    pronoun = "them" if plural else "it"
    if occurrence.quiet == "deferred":
        return f"; quiet hours then defer {pronoun} to {local_wall(occurrence.due_utc, tz):%H:%M}"
    if occurrence.quiet == "dropped":
        return f"; quiet hours then drop {pronoun}"
    return ""


def _cron_times(cron: str, lo: datetime, hi: datetime, limit: int = 240) -> list[datetime]:
    """Naive wall-clock times of ``cron`` in ``[lo, hi)`` (at most ``limit``)."""
    it = croniter(cron, lo - timedelta(seconds=1))
    out: list[datetime] = []
    while len(out) < limit:
        nominal = it.get_next(datetime)
        if nominal >= hi:
            break
        out.append(nominal)
    return out


def _format_shift(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    if rest == 0:
        return f"{hours} h"
    return f"{hours} h {rest} min" if hours else f"{rest} min"


def _join_times(times: Sequence[str], *, unit: str) -> str:
    """``02:30``, ``02:00, 02:15 and 02:30``, or ``02:00, 02:01, … 02:59 (60 runs)``."""
    if len(times) == 1:
        return times[0]
    if len(times) <= 4:
        return f"{', '.join(times[:-1])} and {times[-1]}"
    return f"{times[0]}, {times[1]}, … {times[-1]} ({len(times)} {unit})"


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


# --------------------------------------------------------------------------- publishing


def published_document(loaded: LoadedConfig, *, published_at: datetime) -> bytes:
    """The JSON bytes ``autopilot config push`` uploads (validate the file first).

    The YAML document plus ``published_at`` (ISO-8601 UTC with ``Z``) and
    ``source_sha256`` (of the YAML bytes). UTF-8 with ``ensure_ascii=False`` so
    Chinese text stays readable, sorted keys and fixed separators so the same file
    and time always give the same bytes (and the same S3 ETag).
    """
    if not isinstance(loaded.doc, Mapping):
        raise ValueError(f"{loaded.source}: only a config mapping can be published")
    document = dict(loaded.doc)
    document["published_at"] = iso_utc(published_at)
    document["source_sha256"] = loaded.sha256
    text = json.dumps(
        document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return text.encode("utf-8")


# --------------------------------------------------------------------------- command


def cmd_validate(
    paths: Iterable[str | os.PathLike[str]],
    *,
    out: TextIO | None = None,
    now: datetime | None = None,
) -> int:
    """``autopilot config validate``: print every finding and a summary per file.

    Returns the exit code: 0 when no file has an error (warnings allowed), 1 when
    any has, 2 when no file was given. ``out`` defaults to ``sys.stdout``.
    """
    stream = out if out is not None else sys.stdout
    files = list(paths)
    if not files:
        print("autopilot config validate: no config file given", file=stream)
        return 2
    failed = False
    for path in files:
        report = validate_file(path, now=now)
        for finding in report.findings:
            print(finding, file=stream)
        print(report.summary(), file=stream)
        failed = failed or not report.ok
    return 1 if failed else 0


__all__ = [
    "MAX_CONFIG_BYTES",
    "SCHEMA_PATH",
    "ConfigFileError",
    "Finding",
    "LoadedConfig",
    "ValidationReport",
    "cmd_validate",
    "load_schema",
    "load_yaml_with_lines",
    "published_document",
    "validate_file",
    "validate_loaded",
]
