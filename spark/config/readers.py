"""pydantic-settings' own source classes, reading the ``SPARK_*`` variables and TOML files.

They only read raw values. Which value wins and where it came from is the provenance layer's
job (``sources.py``); whether a value is valid is the rule of its setting
(``spark/cache/config.py``), applied here to the variables through :class:`SparkEnvironment`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from spark.cache.config import (
    Backend,
    Mode,
    NonNegative,
    NonNegativeInt,
    PathValue,
    Positive,
    RedisUrl,
    SentinelText,
)

__all__ = ["ENV_VARS", "SparkEnvironment", "read_environment", "read_toml"]


class SparkEnvironment(BaseSettings):
    """The ``SPARK_*`` variables that set a cache key: the key's name and rule, the variable as
    the alias. Validation is lax here, so text converts (``"60"``, ``"yes"``); files and Python
    arguments are strict. Build it from :func:`read_environment`'s values."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="forbid")

    enabled: bool | None = Field(None, validation_alias="SPARK_ENABLE_CACHE")
    ttl_seconds: NonNegative | None = Field(None, validation_alias="SPARK_CACHE_TTL")
    dir: PathValue | None = Field(None, validation_alias="SPARK_CACHE_DIR")
    mode: Mode | None = Field(None, validation_alias="SPARK_CACHE_MODE")
    max_size_mb: Positive | None = Field(None, validation_alias="SPARK_CACHE_MAX_SIZE_MB")
    memory_max_entries: NonNegativeInt | None = Field(
        None, validation_alias="SPARK_CACHE_MEMORY_MAX_ENTRIES"
    )
    memory_max_bytes: NonNegativeInt | None = Field(
        None, validation_alias="SPARK_CACHE_MEMORY_MAX_BYTES"
    )
    backend: Backend | None = Field(None, validation_alias="SPARK_CACHE_BACKEND")
    url: RedisUrl | None = Field(None, validation_alias="SPARK_CACHE_URL")
    cluster: bool | None = Field(None, validation_alias="SPARK_CACHE_REDIS_CLUSTER")
    sentinel: SentinelText | None = Field(None, validation_alias="SPARK_CACHE_REDIS_SENTINEL")
    service: str | None = Field(None, validation_alias="SPARK_CACHE_REDIS_SERVICE")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values passed in: :func:`read_environment` reads the mapping that
        ``load_settings`` was given, so nothing comes from ``os.environ`` behind its back."""
        return (init_settings,)


# Environment variable -> the cache key it sets.
ENV_VARS: dict[str, str] = {
    str(field.validation_alias): name for name, field in SparkEnvironment.model_fields.items()
}


class _GivenEnvironment(EnvSettingsSource):
    """The environment source over a given mapping (``os.environ``, or a test's), values
    stripped: a variable of spaces counts as unset, like an empty one."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._given = env
        super().__init__(SparkEnvironment)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        stripped = {name: value.strip() for name, value in self._given.items()}
        return parse_env_vars(
            stripped, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def read_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``SPARK_*`` cache variables set in ``env``, as text, by variable name."""
    return _GivenEnvironment(env)()


class _TomlFile(BaseSettings):
    """The settings class the TOML source needs; the document's shape is checked by the
    loader against ``schema.py``, which reports every problem with its table and key."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="allow")


def read_toml(path: Path) -> dict[str, Any]:
    """The content of the TOML file ``path``; raises ``tomllib.TOMLDecodeError`` or ``OSError``."""
    return TomlConfigSettingsSource(_TomlFile, toml_file=path)()
