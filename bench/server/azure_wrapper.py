"""Start azureml-inference-server-http bound to 127.0.0.1 (it has no --host; gunicorn would bind 0.0.0.0)."""

import azureml_inference_server_http.constants as constants
from azureml_inference_server_http import amlserver

constants.DEFAULT_HOST = "127.0.0.1"
amlserver.DEFAULT_HOST = "127.0.0.1"

if __name__ == "__main__":
    amlserver.run()
