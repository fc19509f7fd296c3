"""Stand-in for azureml_inference_server_http.api.aml_request: @rawhttp and AMLRequest (mlctl scoring server)."""

from mlctl.runtime.server.rawhttp import AMLRequest, rawhttp  # noqa: F401
