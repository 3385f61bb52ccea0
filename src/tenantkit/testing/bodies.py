"""Minimal valid example bodies from a pydantic model's JSON schema.

The isolation check creates resources through the app's own ``POST`` routes,
so it needs *a* valid body for each declared body model, not many. This
generator walks the JSON schema pydantic produces and fills each required
field with the simplest value its constraints admit: strings carry a marker
(so the tenant that wrote them can be recognised in other responses), UUID
fields ask a callback for an id, numbers sit at their lower bound. Optional
fields are left out. A body it cannot satisfy is answered ``422`` by the app
and reported as "not created"; pass an explicit body for such routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel

__all__ = ["example_body"]

#: Answers a value for a UUID field (the field's name is the argument), or ``None``.
IdProvider = Callable[[str], str | None]

_MAX_DEPTH = 8


def example_body(model: type[BaseModel], *, marker: str, ids: IdProvider | None = None) -> Any:
    """A JSON-able body ``model`` most likely accepts.

    Args:
        model: The request body model.
        marker: A short lowercase alphanumeric tag written into every free-text string.
        ids: Called with each string field's name; an answer other than ``None``
            fills the field (an id of the right tenant), otherwise a value is made up.
    """
    schema = model.model_json_schema()
    return _Generator(schema.get("$defs", {}), marker, ids or (lambda _name: None)).value(schema, "body", 0)


class _Generator:
    def __init__(self, defs: Mapping[str, Any], marker: str, ids: IdProvider) -> None:
        self.defs = defs
        self.marker = marker
        self.ids = ids

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = self.defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        return schema

    def value(self, schema: Mapping[str, Any], name: str, depth: int) -> Any:
        schema = self.resolve(schema)
        if depth > _MAX_DEPTH:
            return None
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.resolve(s) for s in schema[key]]
                usable = [s for s in options if s.get("type") != "null"] or options
                # A number alternative honours bounds (decimals are number-or-string).
                chosen = next((s for s in usable if s.get("type") in {"number", "integer"}), usable[0])
                return self.value(chosen, name, depth)
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self.resolve(part))
            return self.value(merged, name, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if kind == "object" or "properties" in schema:
            properties: Mapping[str, Any] = schema.get("properties", {})
            return {
                key: self.value(properties[key], key, depth + 1)
                for key in schema.get("required", [])
                if key in properties
            }
        if kind == "array":
            count = int(schema.get("minItems", 0))
            items = schema.get("items", {})
            return [self.value(items, name, depth + 1) for _ in range(count)]
        if kind == "integer":
            return int(_number(schema, 1))
        if kind == "number":
            return _number(schema, 1)
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return self.string(schema, name)

    def string(self, schema: Mapping[str, Any], name: str) -> str:
        fmt = schema.get("format")
        known = self.ids(name)
        if known is not None:
            return known
        if fmt == "uuid":
            return "00000000-0000-4000-8000-000000000000"
        if fmt == "email" or name == "email" or name.endswith("_email"):
            return f"{self.marker}.{name.replace('_', '')}@example.com"
        if fmt == "date-time":
            return datetime.now(UTC).isoformat()
        if fmt == "date":
            return date.today().isoformat()
        if name in {"content_type", "media_type", "mime_type"}:
            return "text/plain"
        if fmt in {"uri", "url"} or name in {"url", "uri"}:
            return f"https://example.com/{self.marker}"
        low, high = int(schema.get("minLength", 1)), schema.get("maxLength")
        tag = re.sub(r"[^a-z0-9]", "", name.lower())[:12] or "x"
        candidates = [
            f"{self.marker}-{tag}",
            f"{self.marker}{tag}",
            f"{self.marker}_{tag}".upper(),
            f"{self.marker}{tag}".upper(),
            f"{self.marker}.{tag}",
            f"{self.marker} {tag}",
            "1",
            "a",
            "A",
        ]
        pattern = schema.get("pattern")
        for candidate in candidates:
            text = candidate.ljust(low, "x")
            if high is not None:
                text = text[: int(high)]
            if pattern is None or re.search(str(pattern), text):
                return text
        examples = schema.get("examples") or ([schema["default"]] if "default" in schema else [])
        return str(examples[0]) if examples else candidates[0]


def _number(schema: Mapping[str, Any], fallback: float) -> float:
    value: float = fallback
    if "minimum" in schema:
        value = max(float(schema["minimum"]), fallback)
    if "exclusiveMinimum" in schema:
        value = max(float(schema["exclusiveMinimum"]) + 1, value)
    if "maximum" in schema:
        value = min(value, float(schema["maximum"]))
    if "exclusiveMaximum" in schema:
        value = min(value, float(schema["exclusiveMaximum"]) - 1)
    return value
