"""Train the example model: a Ridge regression on scikit-learn's bundled diabetes data -> model/model.pkl."""

import os
import sys

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge


def main(out_dir: str) -> str:
    X, y = load_diabetes(return_X_y=True)
    model = Ridge(alpha=1.0).fit(X, y)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.pkl")
    joblib.dump(model, path)
    print(f"trained Ridge on {len(X)} rows (R^2 {model.score(X, y):.3f}) -> {path}")
    return path


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "model"))
