"""What names mean in a disk cache: model folders, provider folders, entry and temp files.

The model folder is the model id made path-safe by a reversible percent-encoding
(``quote_model_id``), so no id can escape the root and two ids never share a folder; an entry
file is ``{key}.json``; a dot file is a writer's temp file (``.{name}.{pid}.{hex}.tmp``) or
bookkeeping (docs/caching.md).
"""

from __future__ import annotations

import functools
import hashlib
import re

from spark.cache.keys import is_key
from spark.errors import ConfigError

__all__ = [
    "TEMP_SUFFIX",
    "check_provider",
    "is_entry_location",
    "is_entry_name",
    "is_temp_name",
    "quote_model_id",
    "unquote_model_id",
]

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_PROVIDER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MAX_DIR_NAME = 160
_SLOT_RE = re.compile(r"^[A-Za-z0-9_%+-][A-Za-z0-9._%+-]{0,159}$")  # (at most _MAX_DIR_NAME)
TEMP_SUFFIX = ".tmp"


@functools.lru_cache(maxsize=4096)  # pure, and asked once per entry by walks and checks
def quote_model_id(model_id: str) -> str:
    """A directory name for ``model_id``: ``[A-Za-z0-9._-]`` kept, every other byte ``%XX``.

    A leading dot is encoded too (no ``.``/``..``/hidden names). An id whose encoding is longer
    than 160 characters keeps a readable prefix and ends in ``+`` and a hash of the full id (``+``
    never appears otherwise), so it stays unique; the full id is in every entry's metadata.
    """
    if not model_id:
        raise ConfigError("model_id must not be empty")
    parts = [ch if ch in _SAFE else _percent(ch) for ch in model_id]
    if parts[0] == ".":
        parts[0] = "%2E"
    quoted = "".join(parts)
    if len(quoted) > _MAX_DIR_NAME:
        digest = hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:32]
        quoted = quoted[:96].rstrip("%0123456789ABCDEF") + "+" + digest
    return quoted


def unquote_model_id(name: str) -> str | None:
    """The model id of a directory name, or None for a hashed (long) name."""
    if "+" in name:
        return None
    data = bytearray()
    index = 0
    while index < len(name):
        if name[index] == "%":
            data.append(int(name[index + 1 : index + 3], 16))
            index += 3
        else:
            data.extend(name[index].encode("ascii"))
            index += 1
    return data.decode("utf-8")


def _percent(ch: str) -> str:
    return "".join(f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogatepass"))


def check_provider(provider: str) -> str:
    """``provider`` if it is a safe lower-case name, else a ``ConfigError``."""
    if not _PROVIDER_RE.match(provider):
        raise ConfigError(f"provider must be a lower-case name like 'openai', got {provider!r}")
    return provider


def is_entry_location(provider: str, model_slot: str, key: str) -> bool:
    """Whether the parts name an entry Spark could have written: a provider name, a folder name
    ``quote_model_id`` makes, a key (no part can reach outside the root)."""
    return bool(_PROVIDER_RE.match(provider) and _SLOT_RE.match(model_slot) and is_key(key))


def is_entry_name(name: str) -> bool:
    """Whether a file name in a model folder is an entry's (``{key}.json``; dot files are temps
    and bookkeeping)."""
    return not name.startswith(".") and name.endswith(".json")


def is_temp_name(name: str) -> bool:
    """Whether a file name is a writer's temp file (``.{name}.{pid}.{hex}.tmp``)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)
