"""A tiny classifier on scikit-learn's bundled iris data (4 features), saved where an example expects its
`iris.pkl`: `python iris_classifier.py OUTPUT`. Runs in the case's own environment, so the pickle loads there."""

import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

x, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=500).fit(x, y), sys.argv[1])
