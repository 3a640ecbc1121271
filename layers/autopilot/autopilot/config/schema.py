"""Generate ``config/schema.json`` from the typed document (:mod:`autopilot.config.document`).

``python -m autopilot.config.schema`` rewrites the committed file; ``--check``
exits 1 when it is stale (``tests/unit/config/test_schema.py`` runs the same
comparison). The output is msgspec's JSON Schema with three deterministic
rewrites that make jsonschema's findings read well:

* a tagged union (channels by ``type``, jobs by ``action``) becomes ``if/then``
  per tag, so a channel's unknown key is reported against *its* type's keys, not
  as "not valid under any of the given schemas";
* an optional key (``None`` default) is simply optional: ``null`` is accepted only
  where it means something (``quiet_hours: null``, no quiet hours);
* chat channels list the secret-looking keys as forbidden (``"not": {}``), so
  the validator can point at SSM instead of saying "unknown key".

Only the CLI and the tests import this module; functions never generate schemas.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from autopilot.config.document import CHAT_CHANNELS, SECRET_CHANNEL_KEYS, ConfigDoc

SCHEMA_ID = "https://community-autopilot.dev/schemas/communities-v1.json"
#: Keys for which ``null`` is a meaningful value ("none"), not just "omitted".
NULLABLE = frozenset({"quiet_hours"})
#: The committed schema, beside the config it describes (editors point at it there).
DEFAULT_PATH = Path(__file__).resolve().parents[4] / "config" / "schema.json"


def build_schema() -> dict[str, Any]:
    """The config's JSON Schema (draft 2020-12), generated from :class:`ConfigDoc`."""
    generated = msgspec.json.schema(ConfigDoc)
    defs: dict[str, Any] = generated["$defs"]
    chat = {c.__name__ for c in CHAT_CHANNELS}
    for name, definition in defs.items():
        definition.pop("title", None)
        if name in chat:
            for key in SECRET_CHANNEL_KEYS:
                definition["properties"][key] = {
                    "description": "Not allowed: secrets live in SSM Parameter Store "
                    "(docs/channels.md).",
                    "not": {},
                }
    for definition in defs.values():
        tag = _tag_of(definition)
        if tag is not None:
            # The tag (``type: sns``) is documented by the variant itself.
            definition["properties"][tag]["description"] = definition.get("description", "")
    for definition in defs.values():
        _rewrite(definition, defs=defs)
    for definition in defs.values():
        _describe(definition, defs)
    root = defs.pop("ConfigDoc")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Community Autopilot config",
        "description": (
            "The ops-edited config of Community Autopilot (config/communities.yaml): "
            "communities, their time zone and quiet hours, channels, content pools and "
            "scheduled jobs. GENERATED from layers/autopilot/autopilot/config/document.py "
            "by `python -m autopilot.config.schema`: do not edit by hand. `autopilot config "
            "validate` checks a file against this schema and then runs the checks a schema "
            "cannot express (cron syntax, IANA zones, references between ids, duplicate ids, "
            "template fields). Reference: docs/config.md."
        ),
        **root,
        "$defs": defs,
    }


def _tag_of(definition: dict[str, Any]) -> str | None:
    """The tag property of a union variant (a required property with one enum value)."""
    for prop, schema in definition.get("properties", {}).items():
        if (
            isinstance(schema, dict)
            and list(schema) in (["enum"], ["enum", "description"])
            and len(schema["enum"]) == 1
            and prop in ("type", "action", "kind")
        ):
            return prop
    return None


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _describe(node: Any, defs: dict[str, Any]) -> None:
    """Give every property a description: from its $ref, its non-null branch or its items."""
    if isinstance(node, list):
        for item in node:
            _describe(item, defs)
        return
    if not isinstance(node, dict):
        return
    for schema in node.get("properties", {}).values():
        if not isinstance(schema, dict) or "description" in schema:
            continue
        for candidate in (schema, *schema.get("anyOf", ()), schema.get("items", {})):
            if "description" in candidate:
                schema["description"] = candidate["description"]
                break
            if "$ref" in candidate and "description" in defs[_ref_name(candidate["$ref"])]:
                schema["description"] = defs[_ref_name(candidate["$ref"])]["description"]
                break
    for value in node.values():
        _describe(value, defs)


def _strip_default(schema: Any) -> Any:
    return (
        {k: v for k, v in schema.items() if k != "default"} if isinstance(schema, dict) else schema
    )


def _rewrite(node: Any, key: str | None = None, *, defs: dict[str, Any]) -> Any:
    """Apply the rewrites described in the module docstring, in place."""
    if isinstance(node, list):
        for item in node:
            _rewrite(item, defs=defs)
        return node
    if not isinstance(node, dict):
        return node
    for child_key, child in list(node.items()):
        if child_key == "properties" and isinstance(child, dict):
            for prop, schema in list(child.items()):
                child[prop] = _optional(prop, schema)
                _rewrite(child[prop], prop, defs=defs)
        else:
            _rewrite(child, child_key, defs=defs)
    if "discriminator" in node and "anyOf" in node:
        union = node.pop("discriminator")
        node.pop("anyOf")
        prop, mapping = union["propertyName"], union["mapping"]
        variants = [defs[_ref_name(ref)] for ref in mapping.values()]
        for variant in variants:
            _rewrite(variant, defs=defs)  # idempotent: optional keys first
        # Keys every variant shares are checked even when the tag is unknown, so
        # one mistake (``action: tweet``) does not hide the others in the same job.
        common = {
            name: _strip_default(schema)
            for name, schema in variants[0]["properties"].items()
            if name != prop
            and all(
                _strip_default(v["properties"].get(name)) == _strip_default(schema)
                for v in variants
            )
        }
        required = [
            name
            for name in variants[0].get("required", [])
            if name != prop and all(name in v.get("required", []) for v in variants)
        ]
        node.update(
            {
                "type": "object",
                "required": [prop, *required],
                "properties": {
                    prop: {
                        "description": " ".join(v.get("description", "") for v in variants),
                        "type": "string",
                        "enum": list(mapping),
                    },
                    **common,
                },
                "allOf": [
                    {
                        "if": {"properties": {prop: {"const": tag}}, "required": [prop]},
                        "then": {"$ref": ref},
                    }
                    for tag, ref in mapping.items()
                ],
            }
        )
    return node


def _optional(prop: str, schema: Any) -> Any:
    """``anyOf: [X, null]`` with default null becomes X (null kept only for NULLABLE keys)."""
    if not isinstance(schema, dict) or schema.get("default", 0) is not None:
        return schema
    branches = schema.get("anyOf", [])
    rest = [b for b in branches if b != {"type": "null"}]
    if prop in NULLABLE or len(rest) != 1 or len(branches) != 2:
        schema.pop("default")
        return schema
    return {**rest[0]}


def render_schema() -> str:
    """The schema as the committed file's text (2-space indent, UTF-8, final newline)."""
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m autopilot.config.schema [--check] [PATH]``."""
    parser = argparse.ArgumentParser(prog="python -m autopilot.config.schema")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if PATH is stale")
    args = parser.parse_args(argv)
    text = render_schema()
    current = args.path.read_text(encoding="utf-8") if args.path.exists() else None
    if args.check:
        if current != text:
            print(f"{args.path} is stale: run `make schema`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.path.write_text(text, encoding="utf-8")
        print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
