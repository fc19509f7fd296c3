"""The user's scoring script: load it, inspect run(), call init() and run()."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import sys
from typing import Any, Callable, Dict, List, Optional

logger = logging.getLogger("azmlinfsrv.user_script")

RAW, SCHEMA, TEXT = "rawhttp", "schema", "text"


class ScriptError(Exception):
    """The scoring script cannot be loaded or its init()/run() are unusable."""


def _load_module(path: str) -> Any:
    if not os.path.isfile(path):
        raise ScriptError(f"Entry script not found: {path}")
    spec = importlib.util.spec_from_file_location("entry_module", path)
    if spec is None or spec.loader is None:
        raise ScriptError(f"Entry script cannot be imported (not a Python file?): {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["entry_module"] = module
    spec.loader.exec_module(module)
    return module


def _is_schema_decorated(func: Callable) -> bool:
    util = sys.modules.get("inference_schema.schema_util")
    if util is None:
        return False
    try:
        return bool(util.is_schema_decorated(func))
    except Exception:  # pragma: no cover - defensive against old inference-schema
        return False


def _is_rawhttp(func: Callable) -> bool:
    if getattr(func, "__mlctl_rawhttp__", False):
        return True
    # scripts that import the real azureml / azureml_inference_server_http packages
    for name in ("azureml_inference_server_http.api.aml_request", "azureml.contrib.services.aml_request"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "_rawHttpRequested", False):
            return True
    return False


class UserScript:
    """A loaded score.py: its init(), run() and how run() takes its input.

    ``mode`` is ``rawhttp`` (run gets the request object), ``schema`` (inference-schema
    decorated: run gets keyword arguments from a JSON object) or ``text`` (run gets the body
    as a string). ``param`` names run's input parameter (text/rawhttp), ``params`` the
    parameters of a schema-decorated run().
    """

    def __init__(self, path: str) -> None:
        self.path = path
        module = _load_module(path)
        if not callable(getattr(module, "init", None)):
            raise ScriptError(f"User script at {path} does not have a init() function defined.")
        if not callable(getattr(module, "run", None)):
            raise ScriptError(f"User script at {path} does not have a run() function defined.")
        self.module = module
        driver = getattr(module, "driver_module", None)
        run = driver.run if driver is not None and callable(getattr(driver, "run", None)) else module.run
        self.init: Callable[[], Any] = module.init
        self.user_run: Callable[..., Any] = run
        self._analyze(run)

    def _analyze(self, run: Callable) -> None:
        params = list(inspect.signature(run).parameters.values())
        if any(p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            raise ScriptError("run() cannot accept positional-only arguments, *args, or **kwargs.")
        self.wants_headers = any(p.name == "request_headers" for p in params)
        params = [p for p in params if p.name != "request_headers"]
        if not params:
            if self.wants_headers:
                raise ScriptError('run() needs to accept an argument other than "request_headers".')
            raise ScriptError("run() needs to accept an argument for input data.")
        self.params: List[inspect.Parameter] = params
        self.param: str = params[0].name
        raw, schema = _is_rawhttp(run), _is_schema_decorated(run)
        if raw and schema:
            raise ScriptError("run() cannot be decorated with both @rawhttp and @input_schema")
        if raw:
            self.mode = RAW
            logger.info("run() is decorated with @rawhttp. Server will invoke it with the request object.")
        elif schema:
            self.mode = SCHEMA
            logger.info(
                "run() is decorated with @input_schema. Server will invoke it with the following arguments: %s.",
                ", ".join(p.name for p in params),
            )
        else:
            self.mode = TEXT
            logger.info("run() is not decorated. Server will invoke it with the input in JSON string.")

    def call(self, kwargs: Dict[str, Any], headers: Optional[Dict[str, str]]) -> Any:
        """Call run() with its input keyword arguments (and the headers when it wants them)."""
        if self.wants_headers:
            kwargs["request_headers"] = headers if headers is not None else {}
        return self.user_run(**kwargs)
