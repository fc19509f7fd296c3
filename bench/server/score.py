"""The benchmark's score.py: an undecorated run() on a scikit-learn diabetes Ridge (same for both servers)."""
import json
import os

import joblib
import numpy as np

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "diabetes.pkl"))


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
