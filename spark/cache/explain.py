"""Why did this miss? The nearest stored request of the same model, and how it differs.

Every entry keeps its normalized request inside the (encrypted) payload, so a miss can be
explained field by field: ``params.temperature: 0.7 -> 0.9``, ``messages[2].content changed``,
``tools[0] added``. Pure diffing here; ``nearest_entry`` reads the model's folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spark.cache.reader import BadEntry, StoredEntry, Where, read_entry
from spark.cache.stores.disk import quote_model_id
from spark.errors import CacheMissError, DecryptionError

if TYPE_CHECKING:
    from spark.cache.bound import BoundCache, CacheRequest

__all__ = ["Nearest", "diff_requests", "explain_miss", "nearest_entry"]

_MAX_SCAN = 5000
_SHORT = 60
_TEXT_LEVEL = "content"  # message text differences are reported per message, not per part


@dataclass(frozen=True)
class Nearest:
    """The stored entry closest to a request, and the differences (stored -> requested)."""

    path: str
    created_at: float
    differences: list[str]


def diff_requests(stored: Any, requested: Any, path: str = "") -> list[str]:
    """Field-level differences from ``stored`` to ``requested`` (both normalized requests)."""
    if stored == requested:
        return []
    if isinstance(stored, Mapping) and isinstance(requested, Mapping):
        return _diff_maps(stored, requested, path)
    if path.endswith(_TEXT_LEVEL) or _is_text(stored) or _is_text(requested):
        return [f"{path} changed"]
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
            out.extend(diff_requests(stored[name], requested[name], where))
    return out


def _diff_lists(stored: list[Any], requested: list[Any], path: str) -> list[str]:
    out: list[str] = []
    for index in range(max(len(stored), len(requested))):
        where = f"{path}[{index}]"
        if index >= len(stored):
            out.append(f"{where} added")
        elif index >= len(requested):
            out.append(f"{where} removed")
        else:
            out.extend(diff_requests(stored[index], requested[index], where))
    return out


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) > _SHORT


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def nearest_entry(bound: BoundCache, request: CacheRequest) -> Nearest | None:
    """The entry of the same provider and model whose request differs in the fewest fields.

    Raises ``DecryptionError`` when the folder's entries are encrypted and no key is held.
    """
    model_dir = quote_model_id(request.model_id)
    best: Nearest | None = None
    undecryptable: DecryptionError | None = None
    scanned = 0
    for entry in bound.manager.store.walk(request.provider, model_dir):
        scanned += 1
        if scanned > _MAX_SCAN:
            break
        found = read_entry(
            bound.manager.store,
            entry.path,
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
        differences = diff_requests(stored, dict(request.normalized))
        if best is None or len(differences) < len(best.differences):
            best = Nearest(entry.path, meta.created_at, differences)
    if best is None and undecryptable is not None:
        raise undecryptable
    return best


def explain_miss(bound: BoundCache, request: CacheRequest) -> CacheMissError:
    """The replay-mode error for ``request``: what is missing, the nearest entry, the diff."""
    lines = [
        f"replay mode: no cache entry for {request.provider}/{request.model_id} "
        f"(key {request.key[:12]}) in {bound.manager.store.describe()}."
    ]
    try:
        nearest = nearest_entry(bound, request)
    except DecryptionError as exc:
        lines.append(
            f"Stored entries for this model are encrypted (key {exc.fingerprint}) and cannot be "
            f"compared: set {bound.config.key_env}."
        )
        nearest = None
    if nearest is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(nearest.created_at))
        lines.append(f"Nearest stored entry: {nearest.path} (recorded {when}), which differs in:")
        lines.extend(f"  {difference}" for difference in nearest.differences[:20])
        if len(nearest.differences) > 20:
            lines.append(f"  ... and {len(nearest.differences) - 20} more")
    elif len(lines) == 1:
        lines.append("No entry is stored for this model at all.")
    lines.append(
        "To record it, run once with mode read_write (SPARK_CACHE_MODE=read_write, or pytest "
        "--spark-cache=record) and commit the new entry."
    )
    return CacheMissError(
        "\n".join(lines), provider=request.provider, model_id=request.model_id, key=request.key
    )
