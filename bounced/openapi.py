"""The OpenAPI 3.1 description of the HTTP interface, served at /openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_JSON_OBJ = {"application/json": {"schema": {"type": "object"}}}

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
                    "address": {"type": "string"},
                    "state": {"type": "string", "enum": ["confirmed", "unconfirmed"]},
                    "changed_at": {"type": ["string", "null"]},
                    "reconfirmed_at": {"type": ["string", "null"]},
                    "incidents": {"type": "array", "items": {"type": "object"}},
                    "decisions": {"type": "array", "items": {"type": "object"}}}}}}},
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
            "summary": "State, history and the reasons for one subject or address",
            "parameters": [
                {"name": "subject", "in": "query", "schema": {"type": "string"}},
                {"name": "address", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the report", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/AddressReport"}}}},
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
                          "413": {"description": "larger than [smtp] max_message_size"},
                          "422": {"description": "bad token: nothing stored",
                                  "content": {"application/json": {"schema": {
                                      "$ref": "#/components/schemas/Error"}}}},
                          "503": _ERROR}}},
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
            "summary": "The latest events and their delivery states",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "events", "content": {"application/json": {
                "schema": {"type": "array", "items": {"type": "object"}}}}},
                "400": _ERROR}}},
    },
}
