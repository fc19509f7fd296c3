"""Stand-in for azureml_inference_server_http.api.aml_response: AMLResponse (mlctl scoring server)."""

from mlctl.runtime.server.response import AMLResponse  # noqa: F401
