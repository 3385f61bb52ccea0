"""A best-effort OpenAPI 3.0.3 rendering of the 3.1 document, for viewers that read only 3.0."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["downgrade_to_30"]


def _downgrade_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_downgrade_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _downgrade_schema(value) for key, value in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del out[key]
            if len(rest) == 1 and "$ref" not in rest[0]:
                out = {**rest[0], **out}
            elif rest:
                out["allOf" if len(rest) == 1 else key] = rest
            out["nullable"] = True
    kind = out.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        if len(kinds) == 1:
            out["type"] = kinds[0]
        else:
            del out["type"]
            out["anyOf"] = [{"type": k} for k in kinds]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    for key, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(key), int | float) and not isinstance(out.get(key), bool):
            out[plain] = out[key]
            out[key] = True
    return out


def downgrade_to_30(document: Mapping[str, Any]) -> dict[str, Any]:
    """A best-effort OpenAPI 3.0.3 rendering of a 3.1 ``document`` for older viewers.

    The bundled Swagger UI (4.x) renders only 3.0 documents; nullable types,
    ``const`` and numeric exclusive bounds are rewritten to their 3.0 forms.
    """
    out = copy.deepcopy(dict(document))
    out["openapi"] = "3.0.3"
    out.pop("jsonSchemaDialect", None)
    out.pop("webhooks", None)
    info = dict(out.get("info", {}))
    info.pop("summary", None)
    out["info"] = info
    components = dict(out.get("components", {}))
    components["schemas"] = _downgrade_schema(components.get("schemas", {}))
    components["parameters"] = _downgrade_schema(components.get("parameters", {}))
    out["components"] = components
    paths: dict[str, Any] = {}
    for path, item in out.get("paths", {}).items():
        paths[path] = {}
        for method, op in item.items():
            op = dict(op)
            if "parameters" in op:
                op["parameters"] = _downgrade_schema(op["parameters"])
            if "requestBody" in op:
                op["requestBody"] = _downgrade_schema(op["requestBody"])
            op["responses"] = _downgrade_schema(op["responses"])
            paths[path][method] = op
    out["paths"] = paths
    return out
