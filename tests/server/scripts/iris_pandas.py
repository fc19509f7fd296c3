"""score.py with a pandas DataFrame input schema (iris LogisticRegression)."""
import os

import joblib
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import input_schema, output_schema

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "iris.pkl"))


@input_schema("frame", PandasParameterType(pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=COLUMNS)))
@output_schema(StandardPythonParameterType([0]))
def run(frame):
    return model.predict(frame[COLUMNS].to_numpy()).tolist()
