"""The autoscaling bench's model: the diabetes Ridge, and 20 ms of waiting per request (a model that waits on
I/O or a device), so an instance's capacity is its request slots rather than this machine's CPUs."""

import json
import os
import pickle
import time

model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as f:
        model = pickle.load(f)


def run(raw_data):
    time.sleep(0.02)
    return model.predict(json.loads(raw_data)["data"]).tolist()
