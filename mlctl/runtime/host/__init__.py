"""The endpoint host: one detached process per endpoint, gateway + supervisor of scoring-server instances.

Run as `python -m mlctl.runtime.host --data-dir DIR --endpoint NAME [--port P]`; driven through
`mlctl.runtime.host.client`. Importing this package imports nothing (the client reads `runfiles`).
"""
