"""Conversions into the current Azure ML online-endpoint YAML: `mlctl convert v1` (SDK/CLI v1's
inferenceconfig.json and deploymentconfig.json). Split by noun: `v1files` reads and checks the v1
files, `fieldmap` is the field table (data), `v1build` builds the new documents from it, `modelargs`
resolves the `-m` arguments, `writing` writes the files all or nothing."""
