"""A tiny regression on scikit-learn's bundled diabetes data (10 features), saved where an example expects
its `sklearn_regression_model.pkl`: `python diabetes_regression.py OUTPUT`. Runs in the case's own
environment (any scikit-learn from 0.22), so the pickle loads there."""

import sys

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

x, y = load_diabetes(return_X_y=True)
joblib.dump(Ridge().fit(x, y), sys.argv[1])
