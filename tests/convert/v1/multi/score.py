"""A v1 entry script serving two models of one deployment, found as v1 found them: Model.get_model_path(NAME)."""

import json
import os

import joblib
import numpy as np
from azureml.core.model import Model


def init():
    global model, offset
    model = joblib.load(os.path.join(Model.get_model_path("model"), "model.pkl"))   # a registered folder
    with open(Model.get_model_path("offset")) as f:                                  # a registered file
        offset = json.load(f)["offset"]


def run(raw_data):
    return (model.predict(np.array(json.loads(raw_data)["data"])) + offset).tolist()
