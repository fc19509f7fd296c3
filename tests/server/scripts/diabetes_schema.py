"""score.py with inference-schema decorators: numpy input, a standard-type option, numpy output."""
import os

import joblib
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import input_schema, output_schema

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "diabetes.pkl"))


@input_schema("data", NumpyParameterType(np.zeros((1, 10)), enforce_shape=False))
@input_schema("scale", StandardPythonParameterType(1.0))
@output_schema(NumpyParameterType(np.array([150.0])))
def run(data, scale=1.0):
    if scale == 0:
        raise ZeroDivisionError("scale must not be 0")
    return model.predict(data) * scale
