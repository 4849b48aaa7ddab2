"""What lies in a disk cache that Spark did not put there (``spark cache verify``,
docs/cli.md).

A walk reads only ``{provider}/{model}/{key}.json`` and never follows a symlink. Anything else
under the root — a copied entry one folder too deep, a dot file, ``<key>.JSON``, a backup — is
never read, but it is committed with the cache: a plaintext copy of an entry there would put a
prompt in git in clear text. Spark's own files are not strays: the root's ``.gitignore`` and
``.spark-*`` bookkeeping (and a ``.git``: a cache may be its own repository). Writers' temp
files are reported apart: ``spark cache cleanup`` removes the ones of crashed writers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from spark.cache.stores.names import is_entry_name, is_temp_name

__all__ = ["strays"]

_OWN = frozenset({".gitignore", ".git"})  # (.git: a cache kept as its own repository)
_NOT_READ = "never read by Spark, but committed with the cache; move or delete it"
_TEMP = (
    "a writer's temp file (a writer is running, or one crashed): `spark cache cleanup` "
    "removes a crashed writer's"
)


def strays(root: str) -> Iterator[tuple[str, str]]:
    """``(path, reason)`` for everything under ``root`` that is not an entry where a walk reads
    entries, nor Spark's own bookkeeping."""
    others = [i for i in _items(root) if not _spark_own(i.name)]
    for provider in _folders(others, "provider"):
        if isinstance(provider, tuple):
            yield provider
            continue
        for model in _folders(_items(provider), "model"):
            yield from [model] if isinstance(model, tuple) else _in_model(model)


def _spark_own(name: str) -> bool:
    """A file Spark keeps in a cache's root (or a writer's temp file of one)."""
    return name in _OWN or name.startswith(".spark-") or is_temp_name(name)


def _folders(items: list[os.DirEntry[str]], kind: str) -> Iterator[str | tuple[str, str]]:
    """The paths of the folders among ``items`` where ``kind`` folders belong, and a
    ``(path, reason)`` for anything else."""
    for item in items:
        if item.is_symlink():
            yield item.path, "a symlink where a cache folder belongs (not followed)"
        elif item.is_dir(follow_symlinks=False) and not item.name.startswith("."):
            yield item.path
        else:
            yield item.path, f"not a {kind} folder: {_NOT_READ}"


def _in_model(folder: str) -> Iterator[tuple[str, str]]:
    for item in _items(folder):
        if is_entry_name(item.name):
            continue  # (an entry: the walk reads and checks it, a symlink included)
        if is_temp_name(item.name):
            yield item.path, _TEMP
        else:
            yield item.path, f"not an entry (only {{key}}.json files belong here): {_NOT_READ}"


def _items(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as found:
            return sorted(found, key=lambda item: item.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
