"""A v1 entry script in v1's layout: it opens ./source_directory/... (v1 ran it with the source directory
inside the working folder), and asks for its model by the name it was registered under."""

import json

import joblib
import numpy as np
from azureml.core.model import Model
from helper import SCALE_KEY


def init():
    global model, offset, scale
    model = joblib.load(Model.get_model_path("my_first_model"))
    with open("./source_directory/extradata.json") as f:
        offset = json.load(f)["offset"]
    with open("./shared-offsets.json") as f:
        scale = json.load(f)[SCALE_KEY]


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return (model.predict(data) * scale + offset).tolist()
