"""Stand-in namespace (mlctl scoring server): real azureml packages, when installed, come first."""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
from azureml.core.model import Model  # noqa: F401
