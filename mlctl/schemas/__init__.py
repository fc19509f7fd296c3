"""The configuration loader: JSON Schemas of each kind, validation, and YAML -> Resources (see load.py)."""
