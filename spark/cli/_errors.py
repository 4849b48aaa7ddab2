"""How the command line reports failure: every error becomes ``error: ...`` plus what to do.

:func:`translate` is the one table from exception to message; ``SparkGroup`` (in
``spark.cli``) applies it to every command, so no command catches errors of its own. The hint
fits the situation, not only the exception's class: a missing key of a cache that already holds
sealed entries names the fingerprint those entries need (a new key cannot open them), while a
new cache is told to make one; a configuration error met by `spark config validate` does not
send the user back to `spark config validate`.
"""

from __future__ import annotations

import errno
import signal
from collections import Counter
from collections.abc import Sequence
from itertools import islice
from typing import IO, Any

import click

from spark.cache import CacheConfig, CacheManager, KeyRing, admin
from spark.cache.codec import CorruptEntryError
from spark.cache.stores.base import EntryStore, StoreUnavailableError
from spark.cli._output import say
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

__all__ = [
    "CliError",
    "key_needed_hint",
    "sealed_fingerprints",
    "stopped_by_signal",
    "translate",
    "verify_hint",
]

# How many entries an error path reads to learn which keys a cache is sealed with.
_SAMPLE = 200


class CliError(click.ClickException):
    """A failure reported as ``error: <message>`` and an optional ``hint`` line; exit code 1."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        """Print to stderr: the message (every line of it), then the hint."""
        say(f"error: {self.message}", err=True, fg="red", file=file)
        if self.hint:
            say(self.hint, err=True, file=file)


class _InterruptedError(CliError):
    exit_code = 128 + signal.SIGINT  # 130: the shell's status for Ctrl-C


class _TerminatedError(CliError):
    exit_code = 128 + signal.SIGTERM


def stopped_by_signal(name: str, message: str, hint: str = "") -> CliError:
    """The error of a command stopped by signal ``name`` (``SIGINT`` is Ctrl-C): exit status
    128 + its number, as a shell reports a program the signal stopped."""
    kind = _TerminatedError if name == "SIGTERM" else _InterruptedError
    return kind(message, hint)


# Exception class -> what to do about it (the first matching class wins). The classes whose
# hint depends on the situation (ConfigError, EncryptionKeyError, DecryptionError) are
# handled by `_situational_hint` first.
_HINTS: tuple[tuple[type[BaseException], str], ...] = (
    (ConfigError, "Fix the configuration, then check it with `spark config validate`."),
    (CacheMissError, ""),  # its message already says how to record the entry
    (CorruptEntryError, "Re-record the entry; `spark cache verify` finds every bad one."),
    (CacheError, "Inspect the cache with `spark cache ls` and `spark cache verify`."),
    (AuthenticationError, "Check the provider's API key or credentials."),
    (RateLimitError, "The provider is throttling: wait and try again."),
    (ProviderConnectionError, "Check the network and the provider's base URL / endpoint."),
    (ProviderError, ""),
    (SparkError, ""),
    (PermissionError, "Check the file's permissions."),
    (FileNotFoundError, "Check the path."),
    (OSError, ""),
    (ImportError, "Install the provider's SDK (in a Spark checkout: pip install -e '.[all]')."),
)


# A file system that refuses every write: the same remedy, whichever file it refused.
_DISK_HINTS = {
    errno.EROFS: "The cache's file system is read-only: run this where the cache directory can "
    "be written (or point --dir / the profile's dir at one that can).",
    errno.ENOSPC: "The disk is full: free some space (`spark cache cleanup`, `spark cache prune`"
    " or a smaller max_cache_size_mb), then run it again.",
    errno.EDQUOT: "Your disk quota is used up: free some space (`spark cache cleanup`, `spark "
    "cache prune`), then run it again.",
}


def translate(
    exc: BaseException, *, rules: CacheConfig | None = None, command: Sequence[str] = ()
) -> CliError:
    """The one-line report of ``exc``, raised by ``command`` (e.g. ``("config", "validate")``)
    while it worked with the cache ``rules`` (None: before it knew them)."""
    if isinstance(exc, CliError):
        return exc
    hint = _situational_hint(exc, rules, tuple(command))
    if hint is None:
        hint = next((text for kind, text in _HINTS if isinstance(exc, kind)), "")
    return CliError(_message(exc), hint)


def _situational_hint(
    exc: BaseException, rules: CacheConfig | None, command: tuple[str, ...]
) -> str | None:
    """The hint of an error whose remedy depends on where it happened; None: the table's."""
    if isinstance(exc, StoreUnavailableError):
        return "Check that the server is running and reachable (url and timeout_ms in spark.toml)."
    if isinstance(exc, ConfigError) and "pip install" in str(exc):
        return ""  # a provider SDK is missing: the message names the install command
    if isinstance(exc, ConfigError) and command[:2] == ("config", "validate"):
        return "Fix each problem listed above, then run it again."
    if isinstance(exc, OSError) and exc.errno in _DISK_HINTS:
        return _DISK_HINTS[exc.errno]
    if isinstance(exc, EncryptionKeyError):
        if not exc.missing:
            return ""  # a malformed key, an unreadable or 0644 key file: the message says it
        if rules is None:
            return ""
        return key_needed_hint(rules, sealed_fingerprints(_store_of(rules)), None)
    if isinstance(exc, DecryptionError):
        if "tampered" in str(exc):
            return "Re-record the entry; `spark cache verify` lists every damaged one."
        if exc.fingerprint:
            key_env = rules.key_env if rules is not None else "SPARK_CACHE_KEY"
            return (
                f"Set {key_env} to the key with fingerprint {exc.fingerprint} (the one the "
                "entry was sealed with); `spark cache verify` lists what else it needs."
            )
    return None


def _store_of(rules: CacheConfig) -> EntryStore | None:
    """The store of ``rules``' cache, when it is a directory that exists (no Redis round trips
    on an error path)."""
    if rules.backend != "disk" or not rules.resolved_dir.is_dir():
        return None
    return CacheManager(rules.resolved_dir, rules).store


def sealed_fingerprints(store: EntryStore | None) -> Counter[str]:
    """The key fingerprints a sample of the cache's entries are sealed with, and how many."""
    if store is None:
        return Counter()
    sample = islice(admin.list_entries(store), _SAMPLE)
    return Counter(info.key_fingerprint for info in sample if info.encrypted)


def key_needed_hint(rules: CacheConfig, needed: Counter[str], keyring: KeyRing | None) -> str:
    """What to do when entries need keys we do not hold (``needed``: fingerprint -> count), or,
    with no sealed entry at all, how to make the first key."""
    file = f", or write it to the key file {rules.key_file}" if rules.key_file else ""
    missing = [fp for fp, _ in needed.most_common() if keyring is None or fp not in keyring.fernets]
    if not needed:
        return (
            f"No entry is sealed yet: make a key with `spark cache keygen` and set "
            f"{rules.key_env} to it{file}."
        )
    if not missing:
        return ""
    names = " and ".join(
        f"{fp} ({needed[fp]} {'entry' if needed[fp] == 1 else 'entries'})" for fp in missing
    )
    held = f"; yours: {', '.join(keyring.fingerprints)}" if keyring is not None else ""
    return (
        f"The entries are sealed with key {names}{held}. Set {rules.key_env} to that key"
        f"{file} (several keys: comma-separated, the one to encrypt with first). A new key "
        "from `spark cache keygen` cannot open them."
    )


def verify_hint(
    store: EntryStore,
    rules: CacheConfig,
    problems: Sequence[admin.EntryProblem],
    keyring: KeyRing | None,
) -> str:
    """What to do about the problems `spark cache verify` found, one line per kind of remedy:
    the right key first (never "delete" for a key we lack), then re-keying, then re-recording."""
    kinds = Counter(problem.kind for problem in problems)
    lines: list[str] = []
    keyless = [p for p in problems if p.kind in ("no key", "unknown key")]
    if keyless:
        needed = Counter(_fingerprint_of(store, p.path) for p in keyless)
        needed.pop("", None)
        lines.append(key_needed_hint(rules, needed, keyring))
    if kinds["plaintext"]:
        lines.append(
            "Plaintext entries: anyone who can write the cache can add one, so check where they "
            "came from (`git log` on the file); re-record them with encryption on, or seal the "
            "ones you trust with `spark cache rotate-key` (it encrypts them)."
        )
    if kinds["stale"]:
        lines.append("Stale entries: re-key them with `spark cache migrate`.")
    if kinds["unavailable"]:
        lines.append("The store could not be reached: check it, then run verify again.")
    if kinds["refused"]:
        lines.append(
            "Refused paths are not entry files where Spark reads entries (a symlink, a FIFO, "
            "a folder, a file over 64 MiB, a copy or backup of an entry, a temp file): move "
            "them out of the cache directory (`spark cache cleanup` removes crashed writers' "
            "temp files)."
        )
    damaged = sum(
        n
        for kind, n in kinds.items()
        if kind not in ("no key", "unknown key", "plaintext", "stale", "unavailable", "refused")
    )
    if damaged:
        lines.append(
            "Damaged entries: re-record them (`pytest --spark-cache=refresh`); "
            "`spark cache show KEY` shows one."
        )
    return "\n".join(line for line in lines if line)


def _fingerprint_of(store: EntryStore, path: str) -> str:
    try:
        return admin.entry_content(store, path, None).meta.key_fingerprint
    except (OSError, CorruptEntryError):
        return ""


def _message(exc: BaseException) -> str:
    if isinstance(exc, ProviderError) and exc.provider and not str(exc).startswith(exc.provider):
        return f"{exc.provider}: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if isinstance(exc, SparkError | OSError | ImportError | CorruptEntryError):
        return str(exc) or type(exc).__name__
    return f"unexpected {type(exc).__name__}: {exc} (a bug in Spark; --traceback shows where)"
