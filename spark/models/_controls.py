"""Per-call cache controls: ``cache_mode=`` and ``cache_ttl_seconds=`` for one call.

They override the model's cache rules for that call only; neither enters the key nor reaches the
provider (docs/caching.md, "Per-call cache controls").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from spark.cache import CacheConfig
from spark.errors import ConfigError

__all__ = ["CallControls", "pop_controls", "warn_bypass"]

logger = logging.getLogger("spark.models")
PER_CALL_MODES = ("read_write", "read_only", "refresh", "off", "replay")
_warned_fields: set[str] = set()


@dataclass(frozen=True, slots=True)
class CallControls:
    """What one call asked of the cache: ``mode`` and ``ttl_seconds`` (None: the model's)."""

    mode: str | None = None
    ttl_seconds: float | None = None

    def config(self, model_config: CacheConfig, caches: bool) -> CacheConfig | None:
        """The rules of this call, or None when it does not use the cache at all.

        ``caches``: whether the model itself caches. A mode turns the cache on for the call
        (``cache_mode="refresh"`` on a model without a cache records); a TTL alone does not.
        """
        configured = model_config.mode if caches else None
        if configured == "replay" and self.mode not in (None, "replay"):
            raise ConfigError(
                f"cache_mode={self.mode!r}: this cache replays, so no call may reach the provider"
                " (record with the profile's mode, e.g. pytest --spark-cache=record)"
            )
        if self.mode == "replay" and configured != "replay":
            raise ConfigError(
                'cache_mode="replay" is a profile\'s mode, not one call\'s: set mode = "replay"'
                " in spark.toml (the testing profile) to replay a recorded cache"
            )
        if self.mode == "off" or (not caches and self.mode is None):
            return None
        try:
            return model_config.with_overrides(
                enabled=True, mode=self.mode, ttl_seconds=self.ttl_seconds
            )
        except ConfigError as exc:
            raise ConfigError(f"cache_ttl_seconds={self.ttl_seconds!r}: {exc}") from None


_NONE = CallControls()


def pop_controls(kwargs: dict[str, Any]) -> CallControls:
    """Take ``cache_mode`` / ``cache_ttl_seconds`` out of a call's keywords (checked)."""
    mode = kwargs.pop("cache_mode", None)
    ttl = kwargs.pop("cache_ttl_seconds", None)
    if mode is None and ttl is None:
        return _NONE
    if mode is not None and mode not in PER_CALL_MODES:
        allowed = ", ".join(repr(m) for m in PER_CALL_MODES)
        raise ConfigError(f"cache_mode={mode!r} is not a cache mode; use one of {allowed}")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0):
        raise ConfigError(
            f"cache_ttl_seconds={ttl!r} must be a number of seconds >= 0 (0: never expires)"
        )
    return CallControls(mode, None if ttl is None else float(ttl))


def warn_bypass(field: str) -> None:
    """One warning per process and field for calls made past the cache because of ``field``."""
    if field not in _warned_fields:
        _warned_fields.add(field)
        logger.warning(
            "calls with %s depend on state the provider holds: they are made uncached (and"
            " counted as bypasses)",
            field,
        )
