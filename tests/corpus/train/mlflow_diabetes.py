"""The scikit-learn model of azureml-examples' no-code MLflow example (cli/endpoints/online/ncd/sklearn-diabetes),
trained small here: a regression on scikit-learn's bundled diabetes data, fitted on its DataFrame (the columns
age, sex, bmi, bp, s1-s6 the example's MLmodel signature names) and saved with `mlflow.sklearn.save_model`
(cloudpickle, as that MLmodel says). Only its `model.pkl` is kept, written to OUTPUT:
`python mlflow_diabetes.py OUTPUT`; the example's own MLmodel, conda.yaml and requirements.txt stay beside it."""

import shutil
import sys
import tempfile
from pathlib import Path

import mlflow.sklearn
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

x, y = load_diabetes(return_X_y=True, as_frame=True)
with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp) / "model"
    mlflow.sklearn.save_model(LinearRegression().fit(x, y), str(folder), serialization_format="cloudpickle")
    shutil.copy(folder / "model.pkl", sys.argv[1])
