"""Runtimes: the drivers that make resources real. Imports nothing (see mlctl/__init__.py)."""
