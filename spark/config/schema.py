"""The shape of ``spark.toml`` and ``profiles/<name>.toml``: pydantic models that reject typos.

Every field is optional because each document is an *overlay*: a profile may set one key and
inherit the rest. Completeness (an alias needs ``provider`` and ``model_id``) is checked on the
merged document by the loader, not here.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from spark.cache.config import (
    Backend,
    Mode,
    NonNegative,
    NonNegativeInt,
    PathValue,
    Positive,
    RedisUrl,
    Sentinels,
    one_of,
)
from spark.models.registry import MODEL_CLASSES

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
    "TelemetryTable",
]

# The providers an alias may name. The model registry is the real owner of this set; it lives
# here as one constant (read at validation time, not baked into the schema) so that the registry
# can supply it later without the schema changing.
#: The providers a ``[models.<alias>]`` may name: those with a model class.
KNOWN_PROVIDERS: frozenset[str] = frozenset(MODEL_CLASSES)


def _known_provider(value: Any) -> str:
    # Read at validation time, so a provider the registry adds later is accepted.
    allowed = sorted(KNOWN_PROVIDERS)
    if not isinstance(value, str) or value not in allowed:
        listed = {"allowed": ", ".join(allowed)}
        raise PydanticCustomError("unknown_provider", "must be one of {allowed}", listed)
    return value


def _date_text(value: Any) -> str:
    """``as_of`` may be a TOML date (``2024-05-13``) or a string; both are kept as text."""
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str):
        raise PydanticCustomError("date_type", "expected a date or a string")
    return value


Provider = Annotated[str, PlainValidator(_known_provider)]
# OpenAI's text APIs (docs/models.md, "Responses API").
Api = Annotated[str, one_of("api", ("chat", "responses"))]
DateText = Annotated[str, PlainValidator(_date_text)]


class _Table(BaseModel):
    """A TOML table: unknown keys and wrong types are errors, never silently coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CacheTable(_Table):
    """``[cache]`` and every ``[... .cache]`` table: :class:`~spark.cache.config.CacheConfig`'s
    names and rules (every key optional: a table is an overlay)."""

    enabled: bool | None = None
    dir: PathValue | None = None
    ttl_seconds: NonNegative | None = None
    max_size_mb: Positive | None = None
    mode: Mode | None = None
    namespace: str | None = None
    encrypt: bool | None = None
    key_env: str | None = None
    key_file: PathValue | None = None
    memory_max_entries: NonNegativeInt | None = None
    memory_max_bytes: NonNegativeInt | None = None
    backend: Backend | None = None
    url: RedisUrl | None = None
    password_env: str | None = None
    prefix: str | None = None
    local_tier: bool | None = None
    timeout_ms: Positive | None = None
    cooldown_seconds: NonNegative | None = None
    lock_seconds: Positive | None = None
    cluster: bool | None = None
    sentinel: Sentinels | None = None
    service: str | None = None


class ModelTable(_Table):
    """``[models.<alias>]``: the provider model an alias names, its options and cache rules."""

    provider: Provider | None = None
    model_id: str | None = None
    api_key_env: str | None = None
    base_url: str | None = None
    api: Api | None = None
    region: str | None = None
    endpoint_url: str | None = None
    timeout: Positive | None = None
    max_retries: NonNegativeInt | None = None
    cache: CacheTable | None = None


class PriceTable(_Table):
    """``[pricing."<model_id>"]``: USD per one million tokens (``cache_read`` / ``cache_write``:
    the prompt-cache rates; unset bills those tokens at ``input``)."""

    input: NonNegative
    output: NonNegative
    cache_read: NonNegative | None = None
    cache_write: NonNegative | None = None
    as_of: DateText | None = None


class SparkTable(_Table):
    """``[spark]``: settings about the file itself."""

    default_profile: str | None = None


class TelemetryTable(_Table):
    """``[telemetry]``: ``enabled = false`` keeps the profile's models out of OpenTelemetry
    (docs/telemetry.md)."""

    enabled: bool | None = None


class ProfileDocument(_Table):
    """``[profiles.<name>]`` and ``profiles/<name>.toml``: an overlay of the whole document."""

    cache: CacheTable | None = None
    models: dict[str, ModelTable] = Field(default_factory=dict)
    pricing: dict[str, PriceTable] = Field(default_factory=dict)
    telemetry: TelemetryTable | None = None


class SparkDocument(ProfileDocument):
    """The whole ``spark.toml``."""

    spark: SparkTable | None = None
    profiles: dict[str, ProfileDocument] = Field(default_factory=dict)


# Keys of a cache table, in file order; ``dir`` and ``key_file`` are paths resolved against the
# directory of spark.toml.
CACHE_KEYS: tuple[str, ...] = tuple(CacheTable.model_fields)
PATH_KEYS: frozenset[str] = frozenset({"dir", "key_file"})
