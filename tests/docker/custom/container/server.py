"""A custom container's own server (standard library only): Azure's custom-container contract, with its own
routes on its own port. It serves a linear model whose weights are the JSON file under AZUREML_MODEL_DIR."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 8765


def load():
    for folder, _, files in os.walk(os.environ["AZUREML_MODEL_DIR"]):
        if "weights.json" in files:
            with open(os.path.join(folder, "weights.json")) as f:
                return json.load(f)
    raise SystemExit("no weights.json under AZUREML_MODEL_DIR")


MODEL = load()
PROBES = {"/live": 0, "/ready": 0}  # how often the host probed each route


class Handler(BaseHTTPRequestHandler):
    def _answer(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in PROBES:
            PROBES[self.path] += 1
            self._answer(200, b"ok", "text/plain")
        else:
            self._answer(404, {"error": f"no route {self.path}"})

    def do_POST(self):
        if self.path.split("?")[0] != "/v1/models/linear:predict":
            return self._answer(404, {"error": f"no route {self.path}"})
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        w, b = MODEL["coef"], MODEL["intercept"]
        preds = [sum(wi * xi for wi, xi in zip(w, row)) + b for row in body["instances"]]
        self._answer(
            200,
            {
                "predictions": preds,
                "model_dir": os.environ["AZUREML_MODEL_DIR"],
                "mode": os.environ.get("MODE"),
                "probes": PROBES,
            },
        )

    def log_message(self, fmt, *args):
        print("custom-container:", fmt % args, flush=True)


if __name__ == "__main__":
    print(f"custom container listening on {PORT}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
