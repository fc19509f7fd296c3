"""Stand-in for azureml.contrib.services.aml_response: AMLResponse (mlctl scoring server)."""

from mlctl.runtime.server.response import AMLResponse  # noqa: F401
