"""The endpoint host: one detached process per endpoint, gateway + supervisor of scoring-server instances.

Run as `python -m mlctl.runtime.local.host --data-dir DIR --endpoint NAME [--port P]`; driven through
`mlctl.runtime.local.hostclient`. Importing this package imports nothing (hostclient reads `runfiles`).
"""
