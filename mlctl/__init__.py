"""mlctl: deploy machine-learning models as online scoring endpoints, declaratively.

This module imports nothing: the scoring server is loaded through it inside model
virtualenvs that have only the standard library and aiohttp.
"""

__version__ = "0.1.0"
