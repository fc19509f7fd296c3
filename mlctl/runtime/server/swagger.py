"""The /swagger.json documents: Swagger 2.0, OpenAPI 3.0.3 and 3.1.0, as the Azure server makes them.

Schemas come from inference-schema when run() is decorated (and that package is present);
undecorated scripts get an open object schema. A user file beside the script (else in the app
root, as Azure) overrides: ``swagger.json`` or ``swagger2.json`` for version 2, ``swagger3.json``
for 3, ``swagger3.1.json`` for 3.1.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

logger = logging.getLogger("azmlinfsrv.swagger")

VERSIONS: Dict[str, str] = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}
_OPEN = {"type": "object", "example": {}}
_ERROR = {"type": "object", "properties": {"message": {"type": "string"}}}
_HEALTH = "Simple health check endpoint to ensure the service is up at any given point."
_SCORE = "Run web service's model and get the prediction output"
_OK = "The service processed the input correctly and provided a result prediction, if applicable."
_FAIL = "The service failed to execute due to an error."


class SwaggerError(Exception):
    """The requested version is unknown or not available for this script: 404."""


def _swagger2(title: str, version: str, inp: Any, out: Any) -> Dict[str, Any]:
    err = {"description": _FAIL, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    return {
        "swagger": "2.0",
        "info": {
            "title": title,
            "description": f"API specification for the Azure Machine Learning service {title}",
            "version": version,
        },
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            "Bearer": {
                "type": "apiKey",
                "name": "Authorization",
                "in": "header",
                "description": "For example: Bearer abc123",
            }
        },
        "paths": {
            "/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH,
                    "responses": {
                        "200": {
                            "description": "If service is up and running, this response will be "
                            "returned with the content 'Healthy'",
                            "schema": {"type": "string"},
                            "examples": {"application/json": "Healthy"},
                        },
                        "default": err,
                    },
                }
            },
            "/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE,
                    "security": [{"Bearer": []}],
                    "parameters": [
                        {
                            "name": "serviceInputPayload",
                            "in": "body",
                            "description": "The input payload for executing the real-time machine learning service.",
                            "schema": {"$ref": "#/definitions/ServiceInput"},
                        }
                    ],
                    "responses": {
                        "200": {"description": _OK, "schema": {"$ref": "#/definitions/ServiceOutput"}},
                        "default": err,
                    },
                }
            },
            "/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "query",
                            "required": False,
                            "type": "string",
                            "enum": ["2", "3", "3.1"],
                        }
                    ],
                    "responses": {
                        "200": {"description": "The Swagger specification.", "schema": {"type": "string"}},
                        "default": err,
                    },
                }
            },
        },
        "definitions": {"ServiceInput": inp, "ServiceOutput": out, "ErrorResponse": copy.deepcopy(_ERROR)},
    }


def _openapi3(title: str, version: str, inp: Any, out: Any, openapi: str) -> Dict[str, Any]:
    def json_of(ref: str) -> Dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}

    err = {"description": _FAIL, "content": json_of("ErrorResponse")}
    return {
        "openapi": openapi,
        "info": {
            "title": title,
            "description": f"API specification for the Azure Machine Learning service {title}",
            "version": version,
        },
        "security": [{"Bearer": []}],
        "paths": {
            "/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": _HEALTH,
                    "responses": {
                        "200": {
                            "description": "If service is up and running, this response will be "
                            "returned with the content 'Healthy'",
                            "content": {"text/plain": {"schema": {"type": "string", "example": "Healthy"}}},
                        },
                        "default": err,
                    },
                }
            },
            "/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE,
                    "security": [{"Bearer": []}],
                    "requestBody": {
                        "description": "The input payload for executing the real-time machine learning service.",
                        "content": json_of("ServiceInput"),
                    },
                    "responses": {"200": {"description": _OK, "content": json_of("ServiceOutput")}, "default": err},
                }
            },
            "/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "Get the Swagger specification.",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["2", "3", "3.1"]},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The Swagger specification.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "default": err,
                    },
                }
            },
        },
        "components": {
            "schemas": {"ServiceInput": inp, "ServiceOutput": out, "ErrorResponse": copy.deepcopy(_ERROR)},
            "securitySchemes": {
                "Bearer": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "For example: Bearer abc123",
                }
            },
        },
    }


def _schemas(run: Callable, version: str) -> Optional[Tuple[Any, Any]]:
    """(input schema, output schema) for this version, or None when the script cannot be described in it."""
    util = sys.modules.get("inference_schema.schema_util")
    if util is None or not util.is_schema_decorated(run):
        return copy.deepcopy(_OPEN), copy.deepcopy(_OPEN)
    try:
        supported = set(util.get_supported_versions(run))
    except Exception:  # pragma: no cover - old inference-schema
        supported = {"2.0", "3.0", "3.1"}
    aliases = {k for k, v in VERSIONS.items() if v == version}
    if supported and not (supported & aliases):
        return None
    inp = util.get_input_schema(run) or copy.deepcopy(_OPEN)
    out = util.get_output_schema(run) or copy.deepcopy(_OPEN)
    return inp, out


def _user_file(folders: Sequence[str], version: str) -> Optional[Dict[str, Any]]:
    names = {"2": ["swagger.json", "swagger2.json"], "3": ["swagger3.json"], "3.1": ["swagger3.1.json"]}[version]
    for path in (os.path.join(folder, name) for folder in folders for name in names):
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            logger.info("Loaded user's swagger file for version [%s] from %s", version, path)
            return doc
    return None


class SwaggerDocs:
    """The swagger documents of one script, built once at start-up (as encoded JSON bytes)."""

    def __init__(self, run: Callable, folders: Sequence[str], title: str, service_version: str) -> None:
        """folders: where user swagger files are looked for, first match wins (the script's
        folder, then the app root, where the Azure server looks)."""
        self.docs: Dict[str, bytes] = {}
        for version in ("2", "3", "3.1"):
            try:
                doc = _user_file(folders, version)
            except (OSError, ValueError) as exc:
                logger.error("Ignoring unreadable user swagger file for version %s: %s", version, exc)
                doc = None
            if doc is None:
                schemas = _schemas(run, version)
                if schemas is None:
                    continue
                if version == "2":
                    doc = _swagger2(title, service_version, *schemas)
                else:
                    doc = _openapi3(title, service_version, *schemas, "3.0.3" if version == "3" else "3.1.0")
            self.docs[version] = json.dumps(doc).encode("utf-8")
        logger.info("Swaggers are prepared for the following versions: [%s].", ", ".join(self.docs))

    def get(self, requested: Optional[str]) -> bytes:
        """The document for ``?version=`` (default 2); SwaggerError when unknown or unavailable."""
        version = VERSIONS.get(requested if requested is not None else "2")
        supported = ", ".join(sorted(self.docs))
        if version is None:
            raise SwaggerError(f"Swagger version [{requested}] is not valid. Supported versions: [{supported}].")
        if version not in self.docs:
            raise SwaggerError(
                f"Swagger version [{requested}] is not supported for the scoring script. "
                f"Supported swagger versions: [{supported}]."
            )
        return self.docs[version]
