"""The JSON Schema of a site definition (see spiders/sites/FORMAT.md).

Kept as a Python dict so the loader validates with jsonschema and the format
reference stays next to it. Messages are made readable by ``definitions``.
"""

from __future__ import annotations

RECORD_FIELDS = (
    "full_name",
    "aliases",
    "age",
    "age_range",
    "birth_year",
    "birth_month",
    "locations",
    "addresses",
    "phones",
    "emails",
    "relatives",
    "deceased",
)
LIST_FIELDS = ("aliases", "locations", "addresses", "phones", "emails", "relatives")
QUERY_FIELDS = ("first_name", "last_name", "middle_name", "full_name", "city", "state", "age", "email", "phone")
BLOCK_KINDS = ("captcha", "interstitial", "rate_limited", "blocked")

_string = {"type": "string", "minLength": 1}
_filter = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "object", "minProperties": 1, "maxProperties": 1},
    ]
}
_marker_one = {
    "type": "object",
    "properties": {"css": _string, "xpath": _string, "text": _string},
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
}
_marker = {"oneOf": [_marker_one, {"type": "array", "items": _marker_one, "minItems": 1}]}
_action = {
    "type": "object",
    "properties": {
        "click": _string,
        "wait_for": _string,
        "fill": {
            "type": "object",
            "properties": {"selector": _string, "value": {"type": "string"}},
            "required": ["selector", "value"],
            "additionalProperties": False,
        },
        "press": {
            "type": "object",
            "properties": {"selector": _string, "key": _string},
            "required": ["selector", "key"],
            "additionalProperties": False,
        },
        "wait": {"type": "integer", "minimum": 0, "maximum": 60000},
        "evaluate": _string,
        "optional": {"type": "boolean"},
    },
    "additionalProperties": False,
    "minProperties": 1,
}
_actions = {"type": "array", "items": _action}
_str_map = {"type": "object", "additionalProperties": {"type": "string"}}

SOURCES = ("css", "xpath", "jsonld", "json", "regex", "const", "any", "all", "join")

_jsonld = {
    "oneOf": [
        _string,
        {
            "type": "object",
            "properties": {"type": _string, "path": _string},
            "required": ["path"],
            "additionalProperties": False,
        },
    ]
}
_field = {
    "oneOf": [
        {"type": "string", "minLength": 1},  # short form: a CSS selector
        {
            "type": "object",
            "properties": {
                "css": _string,
                "xpath": _string,
                "jsonld": _jsonld,
                "json": _string,
                "regex": _string,
                "const": {},
                "any": {"type": "array", "items": {"$ref": "#/$defs/field"}, "minItems": 1},
                "all": {"type": "array", "items": {"$ref": "#/$defs/field"}, "minItems": 1},
                "join": {"type": "array", "items": {"$ref": "#/$defs/field"}, "minItems": 2},
                "many": {"type": "boolean"},
                "sep": {"type": "string"},
                "filters": {"type": "array", "items": _filter},
                "default": {},
            },
            "additionalProperties": False,
            "anyOf": [{"required": [s]} for s in SOURCES],
        },
    ]
}

_search_entry = {
    "type": "object",
    "properties": {
        "requires": {"type": "array", "items": {"enum": list(QUERY_FIELDS)}, "minItems": 1},
        "additional": {"type": "boolean"},
        "url": _string,
        "params": _str_map,
        "headers": _str_map,
        "json": {"type": "boolean"},
        "actions": _actions,
        "form": {
            "type": "object",
            "properties": {"page": _string, "selector": _string, "fields": _str_map},
            "required": ["page", "fields"],
            "additionalProperties": False,
        },
    },
    "required": ["requires"],
    "additionalProperties": False,
    "oneOf": [{"required": ["url"]}, {"required": ["form"]}],
}

# --- opt_out: the removal flow (crawler/removal/flows.py runs it; FORMAT.md documents each step) ---
OPT_OUT_STEPS = ("navigate", "fill", "click", "submit", "expect", "email_confirmation", "send_email", "human")
HUMAN_KINDS = ("phone", "id_upload", "captcha", "other")
# template fields of opt-out steps: {email} is the request's tagged address (never the person's own)
OPT_OUT_FIELDS = (
    "listing_url",
    "listing_path",
    "email",
    "reference",
    "full_name",
    "first_name",
    "last_name",
    "city",
    "state",
    "base_url",
    "opt_out_url",
)
# a human task's texts are stored in plaintext: only the site's own addresses
OPT_OUT_TASK_FIELDS = ("opt_out_url", "base_url")
_selector = {
    "type": "object",
    "properties": {"css": _string, "xpath": _string},
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
}
_step_kinds = {
    "navigate": {
        "oneOf": [
            _string,
            {
                "type": "object",
                "properties": {
                    "url": _string,
                    # the page moved: on 404/410, open `page` and follow the link found there
                    "moved": {
                        "type": "object",
                        "properties": {"page": _string, "link": _selector},
                        "required": ["page", "link"],
                        "additionalProperties": False,
                    },
                },
                "required": ["url"],
                "additionalProperties": False,
            },
        ]
    },
    "fill": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1},
    "click": _selector,
    "submit": {
        "type": "object",
        "properties": {"form": _string, "css": _string},
        "additionalProperties": False,
    },
    "expect": _marker,
    "email_confirmation": {
        "type": "object",
        "properties": {
            "from": _string,
            "link": _string,
            "within_hours": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["from", "link"],
        "additionalProperties": False,
    },
    "send_email": {
        "type": "object",
        "properties": {"to": _string, "subject": _string, "body": _string},
        "required": ["to", "subject", "body"],
        "additionalProperties": False,
    },
    "human": {
        "type": "object",
        "properties": {"kind": {"enum": list(HUMAN_KINDS)}, "instructions": _string, "url": _string},
        "required": ["kind", "instructions"],
        "additionalProperties": False,
    },
}
_opt_out_step = {
    "type": "object",
    "properties": _step_kinds,
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
}
_opt_out = {
    "type": "object",
    "properties": {
        "url": _string,
        "processing_days": {"type": "number", "minimum": 0},
        "notes": {"type": "string"},
        "render": {"enum": ["http", "browser"]},
        "captcha": _marker,
        "steps": {"type": "array", "items": _opt_out_step, "minItems": 1},
    },
    "required": ["url"],
    "additionalProperties": False,
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {"field": _field},
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "name": _string,
        "base_url": {"type": "string", "pattern": "^https?://[^\\s/]+$"},
        "enabled": {"type": "boolean"},
        "render": {"enum": ["http", "browser"]},
        "politeness": {
            "type": "object",
            "properties": {
                "requests_per_minute": {"type": "number", "exclusiveMinimum": 0, "maximum": 6000},
                "concurrency": {"type": "integer", "minimum": 1, "maximum": 64},
                "retry_times": {"type": "integer", "minimum": 0, "maximum": 20},
            },
            "additionalProperties": False,
        },
        "headers": _str_map,
        "cookies": _str_map,
        "search": {"type": "array", "items": _search_entry, "minItems": 1},
        "list": {
            "type": "object",
            "properties": {
                "items": {
                    "type": "object",
                    "properties": {"css": _string, "xpath": _string, "json": {"type": "string"}, "jsonld": _jsonld},
                    "additionalProperties": False,
                    "minProperties": 1,
                    "maxProperties": 1,
                },
                "fields": {"type": "object", "additionalProperties": {"$ref": "#/$defs/field"}},
                "fetch": {
                    "type": "object",
                    "properties": {"template": _string, "from": _string},
                    "required": ["template", "from"],
                    "additionalProperties": False,
                },
                "follow": {"type": "boolean"},
                "next_page": {
                    "type": "object",
                    "properties": {
                        "css": _string,
                        "xpath": _string,
                        "json": _string,
                        "template": _string,
                        "last": _marker,
                    },
                    "additionalProperties": False,
                    "anyOf": [{"required": [k]} for k in ("css", "xpath", "json", "template")],
                },
                "no_results": _marker,
                "actions": _actions,
            },
            "required": ["items", "fields"],
            "additionalProperties": False,
        },
        "detail": {
            "type": "object",
            "properties": {
                "fields": {
                    "type": "object",
                    "properties": {name: {"$ref": "#/$defs/field"} for name in RECORD_FIELDS},
                    "patternProperties": {"^_[a-z0-9_]+$": {"$ref": "#/$defs/field"}},
                    "additionalProperties": False,
                    "required": ["full_name"],
                },
                "not_found": _marker,
                "actions": _actions,
            },
            "required": ["fields"],
            "additionalProperties": False,
        },
        "blocks": {
            "type": "object",
            "properties": {kind: {"type": "array", "items": _string} for kind in BLOCK_KINDS},
            "additionalProperties": False,
        },
        "opt_out": _opt_out,
    },
    "required": ["id", "name", "base_url", "search", "list", "detail"],
    "additionalProperties": False,
}
