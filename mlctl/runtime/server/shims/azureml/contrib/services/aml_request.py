"""Stand-in for azureml.contrib.services.aml_request: @rawhttp and AMLRequest (mlctl scoring server)."""

from mlctl.runtime.server.rawhttp import AMLRequest, rawhttp  # noqa: F401
