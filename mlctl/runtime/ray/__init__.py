"""The ray runtime: deployments served by Ray Serve on an existing Ray cluster, behind mlctl's endpoint host.

Importing this package imports nothing (Ray is imported only by the modules that talk to the cluster).
"""
