"""How the command line reports failure: every error becomes ``error: ...`` plus what to do.

:func:`translate` is the one table from exception to message; ``SparkGroup`` (in
``spark.cli``) applies it to every command, so no command catches errors of its own.
"""

from __future__ import annotations

from typing import IO, Any

import click

from spark.cache.codec import CorruptEntryError
from spark.errors import (
    AuthenticationError,
    CacheError,
    CacheMissError,
    ConfigError,
    DecryptionError,
    EncryptionKeyError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    SparkError,
)

__all__ = ["CliError", "translate"]


class CliError(click.ClickException):
    """A failure reported as ``error: <message>`` and an optional ``hint`` line; exit code 1."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        """Print to stderr: the message (every line of it), then the hint."""
        click.secho(f"error: {self.message}", err=True, fg="red", file=file)
        if self.hint:
            click.echo(self.hint, err=True, file=file)


# Exception class -> what to do about it (the first matching class wins).
_HINTS: tuple[tuple[type[BaseException], str], ...] = (
    (ConfigError, "Fix the configuration, then check it with `spark config validate`."),
    (EncryptionKeyError, "Make a key with `spark cache keygen`; see `spark cache keygen --help`."),
    (DecryptionError, "Set the key the cache was written with (see `spark cache verify`)."),
    (CacheMissError, ""),  # its message already says how to record the entry
    (CorruptEntryError, "Delete the entry, or find every bad one with `spark cache verify`."),
    (CacheError, "Inspect the cache with `spark cache ls` and `spark cache verify`."),
    (AuthenticationError, "Check the provider's API key or credentials."),
    (RateLimitError, "The provider is throttling: wait and try again."),
    (ProviderConnectionError, "Check the network and the provider's base URL / endpoint."),
    (ProviderError, ""),
    (SparkError, ""),
    (PermissionError, "Check the file's permissions."),
    (FileNotFoundError, "Check the path."),
    (OSError, ""),
    (ImportError, "Install the provider's extra: pip install 'spark-llm-cache[all]'."),
)


def translate(exc: BaseException) -> CliError:
    """The one-line report of ``exc``."""
    if isinstance(exc, CliError):
        return exc
    hint = next((text for kind, text in _HINTS if isinstance(exc, kind)), "")
    return CliError(_message(exc), hint)


def _message(exc: BaseException) -> str:
    if isinstance(exc, ProviderError) and exc.provider and not str(exc).startswith(exc.provider):
        return f"{exc.provider}: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if isinstance(exc, SparkError | OSError | ImportError | CorruptEntryError):
        return str(exc) or type(exc).__name__
    return f"unexpected {type(exc).__name__}: {exc} (a bug in Spark; --traceback shows where)"
