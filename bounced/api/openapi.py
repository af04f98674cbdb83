"""The OpenAPI 3.1 description of the HTTP interface, served at /openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_JSON_OBJ = {"application/json": {"schema": {"type": "object"}}}
_WHEN = ("a duration back from now (90m, 24h, 7d, 2w), a day YYYY-MM-DD (its start, UTC) or "
         "a moment YYYY-MM-DDTHH:MM[:SS][+HH:MM] (UTC unless an offset is given)")
_TIME = {"type": ["string", "null"], "format": "date-time"}
_PAGE = {
    "limit": {"name": "limit", "in": "query", "description": "items per page, 1 to 500 "
              "(default 50)", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    "cursor": {"name": "cursor", "in": "query", "description": "where the page starts: the "
               "X-Next-Cursor of the previous page (opaque)", "schema": {"type": "string"}},
}
_NEXT = {
    "Link": {"description": 'the next page\'s URL, rel="next" (RFC 8288); absent on the last '
             "page", "schema": {"type": "string"}},
    "X-Next-Cursor": {"description": "the cursor of the next page; absent on the last page",
                      "schema": {"type": "string"}},
}


def _list_of(schema: str) -> dict[str, Any]:
    return {"description": "one page, newest first", "headers": _NEXT, "content": {
        "application/json": {"schema": {"type": "array", "items": {
            "$ref": f"#/components/schemas/{schema}"}}}}}


def _counts(*names: str) -> dict[str, Any]:
    return {"type": "object", "required": list(names), "additionalProperties": {
        "type": "integer"}, "properties": {n: {"type": "integer"} for n in names}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "bounced", "version": "1",
             "description": "Bounce handler: address state and history, health, metrics, "
                            "HTTP ingest of bounces. Write endpoints need a bearer token."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string"}, "reason": {"type": "string"}}},
            "AddressReport": {"type": "object", "required": ["query", "addresses"], "properties": {
                "query": {"type": "object"},
                "addresses": {"type": "array", "items": {"type": "object", "required": [
                    "subject", "fingerprint", "state", "incidents", "decisions"], "properties": {
                    "subject": {"type": "string"}, "fingerprint": {"type": "string"},
                    "address": {"type": ["string", "null"], "description":
                                "the address the return path was signed for, once a report "
                                "named it (never another address); null until then"},
                    "state": {"type": "string", "enum": ["confirmed", "unconfirmed"]},
                    "changed_at": {"type": ["string", "null"]},
                    "reconfirmed_at": {"type": ["string", "null"]},
                    "incidents": {"type": "array", "items": {"type": "object"}},
                    "decisions": {"type": "array", "items": {"type": "object"}}}}}}},
            "AddressSummary": {"type": "object", "required": [
                "subject", "address", "domain", "fingerprint", "state", "changed_at",
                "incidents", "rule"], "properties": {
                "subject": {"type": "string"}, "address": {"type": "string"},
                "domain": {"type": "string"}, "fingerprint": {"type": "string"},
                "state": {"type": "string", "enum": ["confirmed", "unconfirmed"]},
                "changed_at": _TIME, "reconfirmed_at": _TIME,
                "incidents": {"type": "integer", "description": "incidents recorded (kept)"},
                "last_incident_at": _TIME, "last_reason": {"type": ["string", "null"]},
                "rule": {"type": ["string", "null"],
                         "description": "the rule of the latest decision"}}},
            "Event": {"type": "object", "required": ["type", "id", "occurred_at", "deliveries"],
                      "properties": {
                "type": {"type": "string"}, "id": {"type": "string"},
                "subject": {"type": ["string", "null"]},
                "fingerprint": {"type": ["string", "null"]},
                "occurred_at": {"type": "string", "format": "date-time"},
                "deliveries": {"type": "object", "description": "action name: delivery state",
                               "additionalProperties": {"type": "string"}}}},
            "Stats": {"type": "object", "required": [
                "since", "now", "messages", "incidents", "bounces_by_reason", "top_domains",
                "decisions", "daily", "queue", "outbox", "breakers"], "properties": {
                "since": {"type": "string", "format": "date-time"},
                "now": {"type": "string", "format": "date-time"},
                "messages": {"type": "object", "description": "messages received since, by "
                             "kind ('unprocessed': not classified yet)",
                             "additionalProperties": {"type": "integer"}},
                "incidents": {"type": "object", "required": ["total", "counting", "by_kind"],
                              "properties": {"total": {"type": "integer"},
                                             "counting": {"type": "integer"},
                                             "by_kind": {"type": "object"}}},
                "bounces_by_reason": {"type": "array", "items": {"type": "object", "required": [
                    "reason", "bounces", "counting"], "properties": {
                    "reason": {"type": "string"}, "bounces": {"type": "integer"},
                    "counting": {"type": "integer"}}}},
                "top_domains": {"type": "array", "items": {"type": "object", "required": [
                    "domain", "incidents", "addresses", "counting"], "properties": {
                    "domain": {"type": "string"}, "incidents": {"type": "integer"},
                    "addresses": {"type": "integer"}, "counting": {"type": "integer"}}}},
                "decisions": _counts("unconfirm", "reconfirm", "held"),
                "daily": {"type": "object", "required": ["days", "bounces_by_reason",
                                                         "decisions"], "properties": {
                    "days": {"type": "array", "items": {"type": "string", "format": "date"}},
                    "bounces_by_reason": {"type": "object", "description": "reason: bounces "
                                          "per day, one number per entry of days",
                                          "additionalProperties": {"type": "array", "items": {
                                              "type": "integer"}}},
                    "decisions": {"type": "object", "additionalProperties": {
                        "type": "array", "items": {"type": "integer"}}}}},
                "queue": {"type": "object", "required": ["jobs", "oldest_job_at"],
                          "properties": {
                    "jobs": _counts("pending", "processing", "done", "failed", "quarantined"),
                    "oldest_job_at": _TIME,
                    "oldest_job_age_seconds": {"type": ["number", "null"]}}},
                "outbox": {"type": "object", "required": ["deliveries", "oldest_pending_at"],
                           "properties": {
                    "deliveries": _counts("pending", "delivered", "dead", "skipped",
                                          "unfanned"),
                    "oldest_pending_at": _TIME,
                    "oldest_pending_age_seconds": {"type": ["number", "null"]},
                    "oldest_unfanned_at": _TIME}},
                "breakers": {"type": "array", "items": {"type": "object"}}}},
        },
    },
    "paths": {
        "/healthz": {"get": {"summary": "Store reachable, worker alive, queue depth",
                             "responses": {"200": {"description": "healthy",
                                                   "content": _JSON_OBJ},
                                           "503": {"description": "unhealthy",
                                                   "content": _JSON_OBJ}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {
            "description": "OpenAPI document", "content": _JSON_OBJ}}}},
        "/v1/addresses": {"get": {
            "summary": "State, history and the reasons for one subject or address; without "
                       "either, a page of the addresses matching the filters",
            "parameters": [
                {"name": "subject", "in": "query", "schema": {"type": "string"}},
                {"name": "address", "in": "query", "schema": {"type": "string"}},
                {"name": "state", "in": "query", "description": "list: only this state",
                 "schema": {"type": "string", "enum": ["unconfirmed", "confirmed", "any"]}},
                {"name": "since", "in": "query", "description": "list: only addresses whose "
                 f"state changed since WHEN: {_WHEN}", "schema": {"type": "string"}},
                {"name": "domain", "in": "query", "description": "list: only addresses at "
                 "this receiving domain", "schema": {"type": "string"}},
                _PAGE["limit"], _PAGE["cursor"]],
            "responses": {"200": {
                "description": "the report (subject or address), or one page of addresses, "
                               "latest change first (never changed last)",
                "headers": _NEXT, "content": {"application/json": {"schema": {"oneOf": [
                    {"$ref": "#/components/schemas/AddressReport"},
                    {"type": "array", "items": {
                        "$ref": "#/components/schemas/AddressSummary"}}]}}}},
                "400": _ERROR}}},
        "/v1/subjects/{subject}/reconfirm": {"post": {
            "summary": "The application confirmed the subject's address again",
            "security": [{"bearer": []}],
            "parameters": [{"name": "subject", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "reconfirmed", "content": _JSON_OBJ},
                          "401": _ERROR, "403": _ERROR}}},
        "/v1/bounces": {"post": {
            "summary": "Ingest one raw bounce message (verified, stored durably, processed)",
            "security": [{"bearer": []}],
            "parameters": [
                {"name": "recipient", "in": "query", "schema": {"type": "string"},
                 "description": "envelope recipient (or header X-Envelope-Recipient)"},
                {"name": "sender", "in": "query", "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"message/rfc822": {
                "schema": {"type": "string", "format": "binary"}}}},
            "responses": {"202": {"description": "stored", "content": _JSON_OBJ},
                          "400": _ERROR, "401": _ERROR, "403": _ERROR,
                          "413": {"description": "larger than [smtp] max_message_size",
                                  "content": {"application/json": {"schema": {
                                      "$ref": "#/components/schemas/Error"}}}},
                          "422": {"description": "bad token: nothing stored",
                                  "content": {"application/json": {"schema": {
                                      "$ref": "#/components/schemas/Error"}}}},
                          "429": {"description": "over [limits] peer_bytes_per_minute for "
                                                 "this client: retry after Retry-After seconds",
                                  "content": {"application/json": {"schema": {
                                      "$ref": "#/components/schemas/Error"}}}},
                          "503": {"description": "the store is unavailable, or over [limits] "
                                                 "total_bytes_per_minute or in_flight_bytes: "
                                                 "retry after Retry-After seconds",
                                  "content": {"application/json": {"schema": {
                                      "$ref": "#/components/schemas/Error"}}}}}}},
        "/v1/breakers": {"get": {"summary": "Domain breakers", "responses": {"200": {
            "description": "breakers", "content": {"application/json": {"schema": {
                "type": "array", "items": {"type": "object"}}}}}}}},
        "/v1/breakers/{domain}/release": {"post": {
            "summary": "Release a tripped domain breaker", "security": [{"bearer": []}],
            "parameters": [{"name": "domain", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "released", "content": _JSON_OBJ},
                          "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
        "/v1/events": {"get": {
            "summary": "The latest events and their delivery states, newest first",
            "parameters": [
                {"name": "type", "in": "query", "description": "only events of these types "
                 "(repeat, or separate with commas)", "style": "form", "explode": True,
                 "schema": {"type": "array", "items": {"type": "string", "enum": [
                     "address.unconfirmed", "address.reconfirmed", "complaint.received",
                     "bounce.unrecognised", "breaker.tripped", "breaker.released"]}}},
                {"name": "since", "in": "query", "description": "only events that occurred "
                 f"since WHEN: {_WHEN}", "schema": {"type": "string"}},
                _PAGE["limit"], _PAGE["cursor"]],
            "responses": {"200": _list_of("Event"), "400": _ERROR}}},
        "/dashboard": {"get": {
            "summary": "The dashboard page (HTML): bounces per day by reason, unconfirmations, "
                       "top domains, breakers, queue and outbox; drawn from /v1/stats",
            "parameters": [{"name": "since", "in": "query", "description": "the period shown: "
                            "90m, 24h, 7d, 2w... (default 7d)", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the page", "content": {
                "text/html": {"schema": {"type": "string"}}}}}}},
        "/dashboard/{asset}": {"get": {
            "summary": "The dashboard's scripts and style sheets (its own and uPlot's)",
            "parameters": [{"name": "asset", "in": "path", "required": True, "schema": {
                "type": "string", "enum": ["dashboard.js", "dashboard.css", "uPlot.iife.min.js",
                                           "uPlot.min.css"]}}],
            "responses": {"200": {"description": "the file", "content": {
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}}}}, "404": _ERROR}}},
        "/v1/stats": {"get": {
            "summary": "What happened since WHEN (default 7d): messages by kind, bounces by "
                       "reason, top receiving domains, decisions, per UTC day; the queue, the "
                       "outbox and the breakers now",
            "parameters": [{"name": "since", "in": "query", "description": _WHEN,
                            "schema": {"type": "string", "default": "7d"}}],
            "responses": {"200": {"description": "the summary", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Stats"}}}},
                "400": _ERROR}}},
    },
}

# Every endpoint that reads or changes the store answers 503 while it cannot be reached.
for _path, _method in (("/v1/addresses", "get"), ("/v1/subjects/{subject}/reconfirm", "post"),
                       ("/v1/breakers", "get"), ("/v1/breakers/{domain}/release", "post"),
                       ("/v1/events", "get"), ("/v1/stats", "get")):
    OPENAPI["paths"][_path][_method]["responses"]["503"] = {
        "description": "the store is unavailable: retry after Retry-After seconds",
        "content": _ERROR["content"]}
