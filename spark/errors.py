"""The one exception tree of Spark; every error a user can catch is a ``SparkError``.

::

    SparkError
    ├── ConfigError                 spark.toml, profiles, environment variables, bad arguments
    ├── CacheError                  the cache itself (only raised where failing loudly is the job)
    │   ├── EncryptionKeyError      encryption is on but no usable key was found
    │   ├── DecryptionError         an entry cannot be decrypted with the keys we hold
    │   └── CacheMissError          replay mode found no usable entry for a request
    ├── StructuredOutputError       ``get_json``: the answer does not match the schema (``raw_text``)
    └── ProviderError               a provider call failed (never cached); ``status``: HTTP status
        ├── AuthenticationError     401/403: bad or missing credentials
        ├── RateLimitError          429 / throttling
        ├── BadRequestError         400/404/422: the request itself is wrong
        ├── ProviderServerError     5xx and broken streams
        └── ProviderConnectionError network failures and timeouts

Adapters translate SDK exceptions into these once, at the boundary, with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CacheError",
    "CacheMissError",
    "ConfigError",
    "DecryptionError",
    "EncryptionKeyError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderServerError",
    "RateLimitError",
    "SparkError",
    "StructuredOutputError",
    "error_class_for_status",
]


class SparkError(Exception):
    """Base class of every error Spark raises on purpose."""


class ConfigError(SparkError):
    """Configuration is invalid; the message lists every problem found."""

    def __init__(
        self, message: str, problems: list[str] | None = None, elsewhere: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems or [])
        #: Problems of the file's other profiles (each names its table), found in the same run.
        self.elsewhere: list[str] = list(elsewhere or [])


class CacheError(SparkError):
    """A cache problem that must fail loudly (replay mode, missing keys)."""


class EncryptionKeyError(CacheError):
    """Encryption is on but no key could be loaded; the message names where we looked.
    ``missing``: no key is set at all (not one that is malformed or unreadable)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class DecryptionError(CacheError):
    """An entry could not be decrypted with any key we hold (raised in replay mode only)."""

    def __init__(self, message: str, *, path: str = "", fingerprint: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.fingerprint = fingerprint


class CacheMissError(CacheError):
    """Replay mode: the request has no usable entry; the message says what is missing."""

    def __init__(
        self, message: str, *, provider: str = "", model_id: str = "", key: str = ""
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model_id = model_id
        self.key = key


class StructuredOutputError(SparkError):
    """``get_json``: the model's answer is not JSON or does not match the schema. Such an answer
    is never cached. ``raw_text`` is the answer as the model gave it; ``problems`` the reasons."""

    def __init__(self, message: str, *, raw_text: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.problems: list[str] = list(problems or [])


class ProviderError(SparkError):
    """A provider call failed. ``status`` is the HTTP status when the provider gave one."""

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class AuthenticationError(ProviderError):
    """The provider refused the credentials (401/403)."""


class RateLimitError(ProviderError):
    """The provider throttled the call (429)."""


class BadRequestError(ProviderError):
    """The provider rejected the request as invalid (400/404/422)."""


class ProviderServerError(ProviderError):
    """The provider failed on its side (5xx) or a stream broke off."""


class ProviderConnectionError(ProviderError):
    """The provider could not be reached or did not answer in time."""


_STATUS_ERRORS: dict[int, type[ProviderError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: BadRequestError,
    408: ProviderConnectionError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}


def error_class_for_status(status: int | None) -> type[ProviderError]:
    """The error class of a provider's HTTP ``status`` (one table for every adapter)."""
    if status is None:
        return ProviderError
    found = _STATUS_ERRORS.get(status)
    if found is not None:
        return found
    return ProviderServerError if status >= 500 else ProviderError
