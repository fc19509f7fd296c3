"""The scoring server: runs an Azure-style score.py (init()/run()) behind aiohttp.

Self-contained: imports only the standard library and aiohttp (uvloop and orjson when
present), runs on Python >= 3.9, and is reached inside model virtualenvs by PYTHONPATH.
Start it with ``python -m mlctl.runtime.server --entry-script PATH --model-dir DIR``.
"""
