"""Azure ML scoring script for the diabetes Ridge model (runs unmodified on Azure and under mlctl)."""

import json
import logging
import os

import joblib
import numpy as np


def init():
    """Called once when the deployment starts: load the registered model."""
    global model
    # AZUREML_MODEL_DIR is the registered model's folder; a registered folder keeps its name.
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model", "model.pkl")
    model = joblib.load(model_path)
    logging.info("Init complete")


def run(raw_data):
    """Called per request: {"data": [[10 floats], ...]} -> a list of predictions."""
    logging.info("Request received")
    data = np.array(json.loads(raw_data)["data"])
    result = model.predict(data)
    logging.info("Request processed")
    return result.tolist()
