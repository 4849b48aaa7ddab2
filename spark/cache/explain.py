"""Why did this miss? The nearest stored request of the same model, and how it differs.

Every entry keeps its normalized request inside the (encrypted) payload, so a miss can be
explained field by field: ``body.temperature: 0.7 -> 0.9``, ``body.messages[2].content changed``,
``tools[0] added``. Pure diffing here; ``nearest_entry`` reads the model's folder.

An explanation of a sealed entry (an encrypted one, or any entry of a cache that encrypts)
names the fields that differ but shows no text of either side: strings and structures become a
short digest (``sha256:1a2b3c4d``, of the value's canonical JSON, so two explanations can be
compared), and no key of the user's own data (a tool's JSON-schema properties, a response
schema) is printed. Only the numbers and booleans among the sampling parameters are shown as
values. The requested side is the user's own confidential test input, so it is sealed with the
stored one. See docs/testing.md ("Replay in CI"); ``spark cache explain --show-values`` is the
explicit opt-in for a local terminal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spark._printable import printable_lines
from spark.cache.keys import KEY_SCHEMA_VERSION, property_orders
from spark.cache.reader import BadEntry, StoredEntry, Where, read_entry
from spark.cache.sealed import aligned_items, sealed_differences, value_digest
from spark.cache.stores.disk import quote_model_id
from spark.errors import CacheMissError, DecryptionError

if TYPE_CHECKING:
    from spark.cache.bound import BoundCache, CacheRequest

__all__ = [
    "MissExplanation",
    "Nearest",
    "diff_requests",
    "explain_miss",
    "miss_explanation",
    "nearest_entry",
]

_MAX_SCAN = 5000
_MAX_LINES = 20
_SHORT = 60
_BEFORE, _AFTER = 24, 12  # characters shown around where two texts differ
_TEXT_LEVEL = "content"  # message text differences are reported per message, not per part


@dataclass(frozen=True)
class Nearest:
    """The stored entry closest to a request, and the differences (stored -> requested).

    ``sealed``: the entry is encrypted (or its cache encrypts), so unless values were asked for,
    ``differences`` name fields and digests only.
    """

    path: str
    created_at: float
    differences: list[str]
    sealed: bool = False
    schema: Any = KEY_SCHEMA_VERSION  # the key schema the entry was recorded under


def diff_requests(
    stored: Any, requested: Any, path: str = "", *, sealed: bool = False
) -> list[str]:
    """Field-level differences from ``stored`` to ``requested`` (both normalized requests).

    With ``sealed`` (the request of an encrypted entry) no text of either side is shown: the
    fields that differ are named, their values given as ``value_digest`` (the numbers and
    booleans of ``params`` excepted), and both start at the root of a normalized request.
    """
    found = (
        sealed_differences(stored, requested, path)
        if sealed
        else _plain_diff(stored, requested, path)
    )
    return found + _order_differences(stored, requested, sealed)


def _order_differences(stored: Any, requested: Any, sealed: bool) -> list[str]:
    """Schema properties given in another order (the same fields: their order is part of the
    key, docs/caching.md, "Keys"). Sealed: one line of digests (a nested schema's path holds
    its parent property's name)."""
    before = dict(property_orders(stored))
    changed = [
        (where, was, names)
        for where, names in property_orders(requested)
        if (was := before.get(where)) is not None and was != names and sorted(was) == sorted(names)
    ]
    if sealed and changed:
        was_all, now_all = [c[1] for c in changed], [c[2] for c in changed]
        digests = f"{value_digest(was_all)} -> {value_digest(now_all)}"
        return [f"body: a schema's property order changed ({digests})"]
    return [
        f"{where}: property order changed ({_names(was)} -> {_names(names)})"
        for where, was, names in changed
    ]


def _names(names: list[Any]) -> str:
    return ", ".join(map(str, names))


# -- plaintext: the values themselves ----------------------------------------------------------


def _plain_diff(stored: Any, requested: Any, path: str) -> list[str]:
    if stored == requested:
        return []
    if isinstance(stored, Mapping) and isinstance(requested, Mapping):
        return _diff_maps(stored, requested, path)
    if path.endswith(_TEXT_LEVEL) or _is_text(stored) or _is_text(requested):
        quoted = isinstance(stored, str) and isinstance(requested, str)
        before, after = _excerpts(_as_text(stored), _as_text(requested), quoted)
        return [f"{path} changed: {before} -> {after}"]
    if isinstance(stored, list) and isinstance(requested, list):
        return _diff_lists(stored, requested, path)
    return [f"{path}: {_show(stored)} -> {_show(requested)}"]


def _diff_maps(stored: Mapping[str, Any], requested: Mapping[str, Any], path: str) -> list[str]:
    out: list[str] = []
    for name in sorted(set(stored) | set(requested)):
        where = f"{path}.{name}" if path else name
        if name not in stored:
            out.append(f"{where} added: {_show(requested[name])}")
        elif name not in requested:
            out.append(f"{where} removed (was {_show(stored[name])})")
        else:
            out.extend(_plain_diff(stored[name], requested[name], where))
    return out


def _diff_lists(stored: list[Any], requested: list[Any], path: str) -> list[str]:
    out: list[str] = []
    for i, j in aligned_items(stored, requested):  # (an item put first is one item added)
        if j is not None and i is None:
            out.append(f"{path}[{j}] added: {_show(requested[j])}")
        elif i is not None and j is None:
            out.append(f"{path}[{i}] removed (was {_show(stored[i])})")
        elif i is not None and j is not None:
            out.extend(_plain_diff(stored[i], requested[j], f"{path}[{j}]"))
    return out


def _as_text(value: Any) -> str:
    return (
        value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    )


def _excerpts(stored: str, requested: str, quoted: bool) -> tuple[str, str]:
    """Both texts around where they differ: a little of what they share before it, the part
    that differs (cut when long) and a little after (quoted when they are strings, as JSON
    when they are structures)."""
    room = min(len(stored), len(requested))
    start = next((i for i in range(room) if stored[i] != requested[i]), room)
    room -= start
    same_end = 0
    while same_end < room and stored[-1 - same_end] == requested[-1 - same_end]:
        same_end += 1

    def excerpt(text: str) -> str:
        begin, end = max(0, start - _BEFORE), len(text) - same_end
        middle = text[start:end]
        if len(middle) > _SHORT:
            middle = middle[:_SHORT] + "..."
        shown = text[begin:start] + middle + text[end : end + _AFTER]
        lead = "..." if begin else ""
        trail = "..." if end + _AFTER < len(text) else ""
        return lead + (json.dumps(shown, ensure_ascii=False) if quoted else shown) + trail

    return excerpt(stored), excerpt(requested)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) > _SHORT


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


# -- the nearest entry, and the replay-mode error ----------------------------------------------


def nearest_entry(
    bound: BoundCache, request: CacheRequest, *, show_values: bool = False
) -> Nearest | None:
    """The entry of the same provider and model whose request differs in the fewest fields.

    The differences of a sealed entry name fields and digests only, unless ``show_values``.
    Raises ``DecryptionError`` when the folder's entries are encrypted and no key is held.
    """
    model_slot = quote_model_id(request.model_id)
    requested = dict(request.normalized)
    best: tuple[int, str, float, bool, Any] | None = None
    undecryptable: DecryptionError | None = None
    scanned = 0
    for entry in bound.manager.store.walk(request.provider, model_slot):
        scanned += 1
        if scanned > _MAX_SCAN:
            break
        found = read_entry(
            bound.manager.store,
            entry.location,
            bound.keyring,
            where=Where.of(entry),
            sealed_only=bound.config.encrypt,
            touch=False,
        )
        if isinstance(found, BadEntry) and found.kind in ("no key", "unknown key"):
            undecryptable = DecryptionError(found.reason, fingerprint=found.fingerprint)
        if not isinstance(found, StoredEntry) or found.payload is None:
            continue
        meta, stored = found.meta, found.payload["request"]
        count = len(diff_requests(stored, requested))  # ranked alike, sealed or not
        if best is None or count < best[0]:
            best = (count, entry.location, meta.created_at, meta.sealed, stored)
    if best is None:
        if undecryptable is not None:
            raise undecryptable
        return None
    _, path, created_at, encrypted, stored = best
    is_sealed = encrypted or bound.config.encrypt
    differences = diff_requests(stored, requested, sealed=is_sealed and not show_values)
    return Nearest(path, created_at, differences, is_sealed, stored.get("v"))


@dataclass(frozen=True)
class MissExplanation:
    """Why ``request`` missed: the nearest entry (or why none could be compared)."""

    request: CacheRequest
    where: str
    key_env: str
    nearest: Nearest | None
    undecryptable: str | None = None  # the key fingerprint, when the entries cannot be opened
    values_shown: bool = False

    @property
    def digests_only(self) -> bool:
        """Whether the differences show digests instead of the sealed entry's values."""
        return self.nearest is not None and self.nearest.sealed and not self.values_shown

    def message(self) -> str:
        """The text of the replay-mode error."""
        request = self.request
        lines = [
            f"replay mode: no cache entry for {request.provider}/{request.model_id} "
            f"(key {request.key[:12]}) in {self.where}."
        ]
        if self.undecryptable is not None:
            lines.append(
                f"Stored entries for this model are encrypted (key {self.undecryptable}) and "
                f"cannot be compared: set {self.key_env}."
            )
        nearest = self.nearest
        if nearest is not None and nearest.schema != KEY_SCHEMA_VERSION:
            lines.append(
                f"The nearest entry was recorded under key schema v{nearest.schema}; this Spark "
                f"keys requests with schema v{KEY_SCHEMA_VERSION}, so entries recorded before the "
                "upgrade are never hit. Re-key them with `spark cache migrate` (same --profile or"
                " --dir), commit the result, and replay again."
            )
        if nearest is not None:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(nearest.created_at))
            lines.append(
                f"Nearest stored entry: {nearest.path} (recorded {when}), which differs in:"
            )
            lines.extend(f"  {difference}" for difference in nearest.differences[:_MAX_LINES])
            if len(nearest.differences) > _MAX_LINES:
                lines.append(f"  ... and {len(nearest.differences) - _MAX_LINES} more")
            if self.digests_only:
                lines.append(
                    "The entry is encrypted, so its text is not shown (values are sha256 "
                    "digests); on your own terminal, `spark cache explain --model ALIAS REQUEST "
                    "--show-values` shows it (REQUEST: the call as JSON, or @file; "
                    "docs/testing.md)."
                )
        elif self.undecryptable is None:
            lines.append("No entry is stored for this model at all.")
        lines.append(
            "To record it, run once with mode read_write (SPARK_CACHE_MODE=read_write, or "
            "pytest --spark-cache=record) and commit the new entry."
        )
        return printable_lines("\n".join(lines))  # (the nearest entry's names and values are data)

    def error(self) -> CacheMissError:
        """The replay-mode error."""
        request = self.request
        return CacheMissError(
            self.message(), provider=request.provider, model_id=request.model_id, key=request.key
        )


def miss_explanation(
    bound: BoundCache, request: CacheRequest, *, show_values: bool = False
) -> MissExplanation:
    """Look for the nearest stored entry of ``request`` and say how it differs."""
    try:
        nearest = nearest_entry(bound, request, show_values=show_values)
        fingerprint = None
    except DecryptionError as exc:
        nearest, fingerprint = None, exc.fingerprint or "unknown"
    return MissExplanation(
        request,
        bound.manager.store.describe(),
        bound.config.key_env,
        nearest,
        fingerprint,
        show_values,
    )


def explain_miss(
    bound: BoundCache, request: CacheRequest, *, show_values: bool = False
) -> CacheMissError:
    """The replay-mode error for ``request``: what is missing, the nearest entry, the diff."""
    return miss_explanation(bound, request, show_values=show_values).error()
