"""The docker runtime: images built on the host and imported into a Docker engine, instances as containers.
Imports nothing."""
