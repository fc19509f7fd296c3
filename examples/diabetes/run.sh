#!/usr/bin/env bash
# The README's main job on a fresh machine: train the diabetes model, apply the endpoint, score a request.
#   bash examples/diabetes/run.sh        (./dev example runs it inside the project's .venv)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python3}"

echo "== training the model (scikit-learn's bundled diabetes data)"
"$PY" "$HERE/train.py"

echo "== applying the endpoint (builds the virtualenv once; later runs reuse it)"
mlctl -C "$HERE" apply --auto-approve

echo "== scoring sample-request.json"
mlctl -C "$HERE" invoke diabetes --request-file sample-request.json

echo
echo "Done. mlctl is installed in $(dirname "$(command -v mlctl)"); to have it on your PATH in this shell:"
echo "  . $(dirname "$(command -v mlctl)")/activate"
echo "Then try: mlctl -C $HERE show diabetes | keys diabetes | logs diabetes --deployment blue"
echo "Stop it with: mlctl -C $HERE destroy --auto-approve"
