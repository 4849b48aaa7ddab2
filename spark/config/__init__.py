"""``spark.config``: spark.toml + profiles + ``SPARK_*`` environment -> validated settings.

::

    settings = load_settings()                 # finds spark.toml, ENVIRONMENT picks the profile
    settings.cache_config("embed")             # a CacheConfig, every value resolved
    settings.explain("embed")                  # ... and where each value came from

Precedence, lowest first: built-in defaults; spark.toml; ``[profiles.<name>]``;
``profiles/<name>.toml``; for a model, ``[cache]`` then ``[models.<alias>.cache]`` of that
merged document; ``SPARK_*`` environment variables; explicit arguments.
"""

from __future__ import annotations

from spark.config.init_file import render_default_toml
from spark.config.loader import CONFIG_FILE_NAME, find_config_file, load_settings
from spark.config.readers import ENV_VARS
from spark.config.schema import KNOWN_PROVIDERS
from spark.config.settings import ModelSettings, Price, Settings
from spark.config.sources import ResolvedValue

__all__ = [
    "CONFIG_FILE_NAME",
    "ENV_VARS",
    "KNOWN_PROVIDERS",
    "ModelSettings",
    "Price",
    "ResolvedValue",
    "Settings",
    "find_config_file",
    "load_settings",
    "render_default_toml",
]
