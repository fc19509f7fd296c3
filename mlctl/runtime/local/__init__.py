"""The local runtime: virtualenv images, a model store and one endpoint host per endpoint. Imports nothing."""
