"""Fernet encryption of entry payloads: where keys come from, and one ``KeyRing`` to use them.

The first key encrypts; every key decrypts. Each envelope names the fingerprint of the key that
sealed it, so a read goes straight to the right key instead of trying them all (MultiFernet's
way), and an entry sealed with a key we do not hold is reported by its fingerprint.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from spark.errors import DecryptionError, EncryptionKeyError

__all__ = ["KeyRing", "fingerprint", "generate_key", "load_keyring", "read_key_file"]

SCHEME = "fernet"
_MAX_KEY_FILE_BYTES = 64 * 1024  # a thousand keys and their comments


def generate_key() -> str:
    """A fresh random Fernet key (url-safe base64 text)."""
    return Fernet.generate_key().decode("ascii")


def fingerprint(key: str | bytes) -> str:
    """A short, non-secret name for a key: the first 8 hex digits of its SHA-256."""
    raw = key.encode("ascii") if isinstance(key, str) else key
    return hashlib.sha256(raw.strip()).hexdigest()[:8]


@dataclass(frozen=True)
class KeyRing:
    """Fernet keys by fingerprint; ``primary`` encrypts."""

    primary: str
    fernets: Mapping[str, Fernet]

    @classmethod
    def from_keys(cls, keys: Sequence[str], source: str = "") -> KeyRing:
        """Build a ring from key strings, first = primary; a malformed key is an error that
        names ``source`` (where the keys came from) when given."""
        cleaned = [k.strip() for k in keys if k.strip()]
        if not cleaned:
            raise EncryptionKeyError("no encryption key given")
        fernets: dict[str, Fernet] = {}
        for position, key in enumerate(cleaned, start=1):
            try:
                fernets.setdefault(fingerprint(key), Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError) as exc:
                which = f"key #{position} of {len(cleaned)}" if len(cleaned) > 1 else "the key"
                raise EncryptionKeyError(
                    f"{which} in {source or 'the key list'} is not a valid Fernet key (44 "
                    "characters of url-safe base64, as `spark cache keygen` prints them): was "
                    "it cut or quoted when it was copied?"
                ) from exc
        return cls(primary=fingerprint(cleaned[0]), fernets=fernets)

    @property
    def fingerprints(self) -> list[str]:
        """Fingerprints of every key, primary first."""
        return list(self.fernets)

    def encrypt(self, data: bytes) -> str:
        """Seal ``data`` with the primary key; returns the Fernet token as text."""
        return self.fernets[self.primary].encrypt(data).decode("ascii")

    def decrypt(self, token: str, key_fingerprint: str) -> bytes:
        """Open a token sealed with the key named ``key_fingerprint``.

        Raises ``DecryptionError`` when we do not hold that key or the token was tampered with.
        """
        fernet = self.fernets.get(key_fingerprint)
        try:
            if fernet is not None:
                return fernet.decrypt(token)
            return MultiFernet(list(self.fernets.values())).decrypt(token)
        except (InvalidToken, UnicodeEncodeError, ValueError) as exc:
            reason = "was tampered with" if fernet is not None else "uses a key we do not hold"
            raise DecryptionError(
                f"entry sealed with key {key_fingerprint} {reason}", fingerprint=key_fingerprint
            ) from exc


def read_key_file(path: Path) -> list[str]:
    """Keys from a file, one per line (``#`` comments allowed); refused unless it is a regular
    file of mode 0600 (checked before it is read: a FIFO or a device is never read)."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise EncryptionKeyError(f"cannot read key file {path}: {exc}") from exc
    mode = found.st_mode
    if not stat.S_ISREG(mode) or found.st_size > _MAX_KEY_FILE_BYTES:
        raise EncryptionKeyError(
            f"key file {path} is not a regular file of at most {_MAX_KEY_FILE_BYTES} bytes: "
            "point key_file at the file `spark cache keygen --write` made"
        )
    if stat.S_IMODE(mode) & 0o077:
        raise EncryptionKeyError(
            f"key file {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}`"
        )
    try:
        text = path.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise EncryptionKeyError(f"cannot read key file {path}: {exc}") from exc
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def load_keyring(
    key_env: str = "SPARK_CACHE_KEY",
    key_file: str | Path | None = None,
    *,
    required: bool,
    environ: Mapping[str, str] | None = None,
) -> KeyRing | None:
    """Keys from ``$key_env`` (comma-separated, first = primary), else from ``key_file``.

    With ``required`` and no key found, raises ``EncryptionKeyError`` naming both places;
    a key is never generated silently.
    """
    env = os.environ if environ is None else environ
    keys = [k for k in env.get(key_env, "").split(",") if k.strip()]
    source = f"the environment variable {key_env}"
    path = Path(key_file).expanduser() if key_file else None
    if not keys and path is not None:
        keys, source = read_key_file(path), f"the key file {path}"
    if keys:
        return KeyRing.from_keys(keys, source)
    if required:
        where = f"the environment variable {key_env}"
        where += f" or the key file {path}" if path else " (no key_file is configured)"
        raise EncryptionKeyError(
            f"cache encryption is on but no key was found in {where} "
            '(docs/testing.md, "Make a key")',
            missing=True,
        )
    return None
