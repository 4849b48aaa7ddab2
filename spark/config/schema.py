"""The shape of ``spark.toml`` and ``profiles/<name>.toml``: pydantic models that reject typos.

Every field is optional because each document is an *overlay*: a profile may set one key and
inherit the rest. Completeness (an alias needs ``provider`` and ``model_id``) is checked on the
merged document by the loader, not here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from spark.cache.config import CACHE_BACKENDS, CACHE_MODES, REDIS_SCHEMES, redact_url, url_scheme

__all__ = [
    "CACHE_KEYS",
    "KNOWN_PROVIDERS",
    "PATH_KEYS",
    "CacheTable",
    "ModelTable",
    "PriceTable",
    "ProfileDocument",
    "SparkDocument",
    "SparkTable",
]

# The providers an alias may name. The model registry is the real owner of this set; it lives
# here as one constant (read at validation time, not baked into the schema) so that the registry
# can supply it later without the schema changing.
KNOWN_PROVIDERS: frozenset[str] = frozenset({"openai", "bedrock", "gemini"})


def _number(value: Any) -> int | float:
    """A TOML integer or float, kept as given (86400 stays an int); booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PydanticCustomError("number_type", "expected a number")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "expected an integer")
    return value


def _at_least_zero(value: int | float) -> int | float:
    if value < 0:
        raise PydanticCustomError("greater_than_equal", "must be >= 0")
    return value


def _above_zero(value: int | float) -> int | float:
    if value <= 0:
        raise PydanticCustomError("greater_than", "must be > 0")
    return value


def _check_one_of(value: str, name: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        listed = {"allowed": ", ".join(allowed)}
        raise PydanticCustomError(f"unknown_{name}", "must be one of {allowed}", listed)
    return value


def _known_mode(value: str) -> str:
    return _check_one_of(value, "mode", CACHE_MODES)


def _known_backend(value: str) -> str:
    return _check_one_of(value, "backend", CACHE_BACKENDS)


def _redis_url(value: str) -> str:
    """A ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL. The error shows the URL with
    its password hidden (the "got" pydantic would add could show it)."""
    if url_scheme(value) not in REDIS_SCHEMES:
        allowed = ", ".join(f"{scheme}://" for scheme in REDIS_SCHEMES)
        raise PydanticCustomError(
            "redis_url",
            "must start with {allowed} (got {shown})",
            {"allowed": allowed, "shown": f'"{redact_url(value)}"'},
        )
    return value


def _known_provider(value: str) -> str:
    # Read at validation time, so a provider the registry adds later is accepted.
    return _check_one_of(value, "provider", sorted(KNOWN_PROVIDERS))


def _date_text(value: Any) -> str:
    """``as_of`` may be a TOML date (``2024-05-13``) or a string; both are kept as text."""
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str):
        raise PydanticCustomError("date_type", "expected a date or a string")
    return value


Number = Annotated[int | float, PlainValidator(_number)]
NonNegative = Annotated[Number, AfterValidator(_at_least_zero)]
Positive = Annotated[Number, AfterValidator(_above_zero)]
NonNegativeInt = Annotated[int, PlainValidator(_integer), AfterValidator(_at_least_zero)]
Mode = Annotated[str, AfterValidator(_known_mode)]
Backend = Annotated[str, AfterValidator(_known_backend)]
RedisUrl = Annotated[str, AfterValidator(_redis_url)]
Provider = Annotated[str, AfterValidator(_known_provider)]
DateText = Annotated[str, PlainValidator(_date_text)]


class _Table(BaseModel):
    """A TOML table: unknown keys and wrong types are errors, never silently coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CacheTable(_Table):
    """``[cache]`` and every ``[... .cache]`` table."""

    enabled: bool | None = None
    dir: str | None = None
    ttl_seconds: NonNegative | None = None
    max_size_mb: Positive | None = None
    mode: Mode | None = None
    namespace: str | None = None
    encrypt: bool | None = None
    key_env: str | None = None
    key_file: str | None = None
    backend: Backend | None = None
    url: RedisUrl | None = None
    password_env: str | None = None
    prefix: str | None = None
    local_tier: bool | None = None
    timeout_ms: Positive | None = None
    cooldown_seconds: NonNegative | None = None
    lock_seconds: Positive | None = None


class ModelTable(_Table):
    """``[models.<alias>]``: the provider model an alias names, its options and cache rules."""

    provider: Provider | None = None
    model_id: str | None = None
    api_key_env: str | None = None
    base_url: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    timeout: Positive | None = None
    max_retries: NonNegativeInt | None = None
    cache: CacheTable | None = None


class PriceTable(_Table):
    """``[pricing."<model_id>"]``: USD per one million tokens."""

    input: NonNegative
    output: NonNegative
    as_of: DateText | None = None


class SparkTable(_Table):
    """``[spark]``: settings about the file itself."""

    default_profile: str | None = None


class ProfileDocument(_Table):
    """``[profiles.<name>]`` and ``profiles/<name>.toml``: an overlay of the whole document."""

    cache: CacheTable | None = None
    models: dict[str, ModelTable] = Field(default_factory=dict)
    pricing: dict[str, PriceTable] = Field(default_factory=dict)


class SparkDocument(ProfileDocument):
    """The whole ``spark.toml``."""

    spark: SparkTable | None = None
    profiles: dict[str, ProfileDocument] = Field(default_factory=dict)


# Keys of a cache table, in file order; ``dir`` and ``key_file`` are paths resolved against the
# directory of spark.toml.
CACHE_KEYS: tuple[str, ...] = tuple(CacheTable.model_fields)
PATH_KEYS: frozenset[str] = frozenset({"dir", "key_file"})
