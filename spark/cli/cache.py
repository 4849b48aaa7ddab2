"""``spark cache``: look into a cache, check it, clean it, manage its keys.

Every command works on the active profile's cache (a directory, or a Redis with
``backend = "redis"``) unless ``--dir`` names a directory.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict
from pathlib import Path

import click

from spark.cache import admin
from spark.cache.stores.base import remove_each
from spark.cache.stores.disk import DiskStore, quote_model_id
from spark.cache.stores.maintenance import (
    remove_if_expired,
    remove_stray_temps,
    temp_files_beside,
)
from spark.cli._context import (
    CacheTarget,
    CliState,
    cache_target,
    dir_option,
    filtered_target,
    note_missing_cache,
    pass_state,
    profile_option,
)
from spark.cli._errors import CliError, verify_hint
from spark.cli._output import (
    echo_json,
    format_expiry,
    format_size,
    format_time,
    json_option,
    print_table,
    progress,
    readable_json,
    say,
)
from spark.cli._output import (
    entries as n_entries,
)
from spark.cli.keys import keygen, rotate_key
from spark.cli.migrate import migrate
from spark.cli.replay import explain, prune
from spark.cli.report import report
from spark.cli.stats import stats

__all__ = ["cache"]

_KEY_RE = re.compile(rf"^[0-9a-fA-F]{{{admin.MIN_KEY_PREFIX},64}}$")
provider_option = click.option("--provider", metavar="NAME", help="Only this provider's entries.")
model_option = click.option(
    "--model",
    "model",
    metavar="MODEL",
    help="Only this model's entries: an alias of spark.toml or a model id (e.g. gpt-4o).",
)


@click.group(short_help="Inspect, verify and clean the cache; manage its keys.")
def cache() -> None:
    """Inspect, verify and clean the response cache, and manage its encryption keys."""


cache.add_command(stats)
cache.add_command(keygen)
cache.add_command(rotate_key)
cache.add_command(explain)
cache.add_command(prune)
cache.add_command(report)
cache.add_command(migrate)


@cache.command("ls", short_help="List entries (metadata only).")
@provider_option
@model_option
@profile_option
@dir_option
@json_option
@pass_state
def list_entries(
    state: CliState,
    provider: str | None,
    model: str | None,
    profile: str | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """List the entries, one per line: provider, model, key, size, created, expires, encrypted.

    Reads only the metadata of each entry: no payload is decrypted and no key is needed.
    """
    target, only = filtered_target(state, profile, cache_dir, provider, model)
    entries = list(admin.list_entries(target.store, only.provider, only.model_id))
    note = note_missing_cache(state, target, profile)
    if note:
        say(note, err=True)
    if as_json:
        echo_json([entry.to_dict() for entry in entries])
        return
    rows = [
        (
            e.provider,
            e.model_id,
            e.key[:12],
            format_size(e.size),
            format_time(e.created_at, never="?") if not e.error else "unreadable",
            format_expiry(e.expires_at) if not e.error else "?",
            ("yes" if e.encrypted else "no") if not e.error else "?",
        )
        for e in entries
    ]
    if rows:
        columns = ("Provider", "Model", "Key", "Size", "Created", "Expires", "Encrypted")
        print_table(columns, rows)
    total = sum(e.size for e in entries)
    say(f"{n_entries(len(entries))}, {format_size(total)} in {target.where}")
    unreadable = sum(1 for e in entries if e.error)
    if unreadable:
        say(f"{unreadable} unreadable: see `spark cache verify`")


@cache.command("show", short_help="Show one entry, decrypted when the keys allow.")
@click.argument("key")
@profile_option
@dir_option
@json_option
@pass_state
def show_entry(
    state: CliState, key: str, profile: str | None, cache_dir: Path | None, as_json: bool
) -> None:
    """Show one entry: its metadata and, when the keys allow, its request and response.

    KEY is the entry's key, or a prefix of it of at least 8 hex digits that only one entry
    has (`spark cache ls` shows the first 12). An encrypted payload is decrypted with the
    profile's keys (SPARK_CACHE_KEY or the key file). Long base64 text (an image or audio a
    model made) is summed up in one line; --json prints everything whole.
    """
    if not _KEY_RE.match(key):
        raise click.BadParameter("expected 8 to 64 hex digits of an entry's key", param_hint="KEY")
    target = cache_target(state, profile, cache_dir)
    path = admin.find_entry(target.store, key)
    content = admin.entry_content(target.store, path, target.keyring())
    meta = content.meta
    if as_json:
        echo_json(
            {
                "path": path,
                "size": content.size,
                "meta": content.meta._asdict(),
                "payload": content.payload,
                "payload_error": content.payload_error or None,
            }
        )
        return
    sealed = f"fernet (key {meta.key_fingerprint})" if meta.encryption != "none" else "none"
    for label, value in (
        ("key", meta.key),
        ("path", path),
        ("provider", meta.provider),
        ("model", meta.model_id),
        ("created", format_time(meta.created_at)),
        ("expires", format_time(meta.expires_at)),
        ("encryption", sealed),
    ):
        say(f"{label:<11} {value}")
    if content.payload is None:
        say(f"payload     not shown: {content.payload_error}")
        if meta.encryption != "none":
            say(f"            (set {target.config.key_env} or key_file to its key)")
        return
    if meta.encryption == "none" and target.config.encrypt:
        say(
            "warning: a plaintext entry in a cache that encrypts: every read refuses it, and "
            "it may have been planted (`spark cache verify` lists such entries)",
            err=True,
        )
    for part in ("request", "response"):
        say(f"\n{part}:")
        say(readable_json(content.payload.get(part)))


@cache.command(short_help="Delete entries: all, a provider's or a model's.")
@provider_option
@model_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@profile_option
@dir_option
@json_option
@pass_state
def clear(
    state: CliState,
    provider: str | None,
    model: str | None,
    yes: bool,
    profile: str | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Delete entries: every entry, or one provider's, or one model's.

    Asks for confirmation unless --yes. The directory itself (and its ledger) stays; on Redis,
    only this cache's key prefix is touched.
    """
    target, only = filtered_target(state, profile, cache_dir, provider, model)
    store = target.store
    entries = admin.entry_files(store, only.provider, only.model_id)
    what = only.label
    if note := note_missing_cache(state, target, profile):
        say(note, err=True)
    if entries and not yes:
        click.confirm(
            f"Delete {n_entries(len(entries))} ({what}) from {target.where}?",
            abort=True,
            err=True,
        )
    removed = remove_each(store, (e.location for e in progress(entries, "Deleting")))
    store.after_clear(only.provider, quote_model_id(only.model_id) if only.model_id else None)
    if as_json:
        echo_json({"removed": removed, "cache_dir": target.cache_dir, "store": target.where})
    else:
        say(f"Removed {n_entries(removed)} ({what}) from {target.where}.")


@cache.command(short_help="Delete expired entries and stray temp files.")
@profile_option
@dir_option
@json_option
@pass_state
def cleanup(state: CliState, profile: str | None, cache_dir: Path | None, as_json: bool) -> None:
    """Delete expired entries and the temp files that crashed writers left behind.

    An entry is expired once its expires_at has passed (a file whose writer's expiry stamp,
    its modification time, has passed goes unread). Temp files are removed when the process
    that wrote them is gone or they are over an hour old (entries', the .gitignore's, the run
    record's and the key file's). Other unreadable entries are left alone: `spark cache
    verify` reports them. On Redis, entries expire by themselves; this
    removes them from the index sets that listing and statistics use.
    """
    target = cache_target(state, profile, cache_dir)
    store = target.store
    now = time.time()
    if note := note_missing_cache(state, target, profile):
        say(note, err=True)
    if isinstance(store, DiskStore):
        entries = admin.entry_files(store)
        checking = progress(entries, "Checking")
        expired = sum(remove_if_expired(store, e, now) for e in checking)
        key_file = target.config.key_file
        beside = temp_files_beside(Path(key_file).expanduser()) if key_file else []
        temps = remove_stray_temps(store, now, also=beside)
        store.prune_empty_dirs()
    else:
        expired, temps = store.cleanup_expired(now), 0
        entries = admin.entry_files(store)
    if as_json:
        echo_json(
            {"expired_removed": expired, "temp_files_removed": temps, "checked": len(entries)}
        )
    else:
        say(
            f"Removed {expired} expired entries and {temps} stray temp files "
            f"(checked {n_entries(len(entries))} in {target.where})."
        )


@cache.command(short_help="Check that every entry parses and decrypts.")
@click.option("--require-encrypted", is_flag=True, help="Fail on any plaintext entry.")
@click.option(
    "--sealed-only",
    is_flag=True,
    help="Check only that every entry is sealed, without opening it: no key needed "
    "(a pre-commit hook every committer can run).",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Redis: add entries that its index sets lost (e.g. evicted) back to them.",
)
@profile_option
@dir_option
@json_option
@pass_state
def verify(
    state: CliState,
    require_encrypted: bool,
    sealed_only: bool,
    repair: bool,
    profile: str | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Check that every entry parses and decrypts with the configured keys.

    Lists each bad entry with its path and the reason: truncated, corrupt, key mismatch (the
    entry is not what its file name says, or was edited), unknown key fingerprint (sealed with
    a key you do not hold), no key, tampered, stale (an old key schema: it can never be hit),
    or plaintext (with --require-encrypted, or in a cache that encrypts). Exits 1 if any entry
    is bad, so it works as a pre-commit hook or a CI step for a committed cache:

    \b
        spark cache verify --profile testing --require-encrypted

    --sealed-only checks each entry's envelope only: that it is sealed (plaintext fails) and
    whole, with no key, so every committer can run it; only the key proves an entry opens.

    In a cache directory it also fails on anything Spark does not keep there (a copy of an
    entry in another folder or under another name, a crashed writer's temp file, a symlink):
    Spark never reads it, but it would be committed with the cache.

    On Redis it also finds entries that the index sets behind listings and statistics no
    longer name (an index set evicted under allkeys-lru); --repair adds them back.
    """
    target = cache_target(state, profile, cache_dir)
    _require_cache(target, profile)
    keyring = None if sealed_only else target.keyring()
    unindexed, dangling = target.store.rebuild_index(repair)
    entries = admin.entry_files(target.store)
    report = admin.verify_entries(
        target.store,
        progress(entries, "Verifying"),
        keyring,
        # (a cache that encrypts refuses plaintext entries: verify says so without the flag)
        require_encrypted=require_encrypted or sealed_only or target.config.encrypt,
        envelope_only=sealed_only,
    )
    problems = report.problems
    if as_json:
        echo_json(
            {
                "cache_dir": target.cache_dir,
                "checked": len(entries),
                "ok": len(entries) - sum(1 for p in problems if p.key),
                "problems": [asdict(p) for p in problems],
                "old_format": report.old_format,
                "unindexed": unindexed,
                "reindexed": unindexed if repair else 0,
                "dangling_removed": dangling,
            }
        )
    else:
        if unindexed and repair:
            say(f"Indexed {n_entries(unindexed)} again that listings had lost.")
        elif unindexed:
            say(
                f"{n_entries(unindexed)} missing from the index (not listed or counted; evicted "
                "under allkeys-lru?): `spark cache verify --repair` adds them back."
            )
        for problem in problems:
            say(f"{_shown(problem.path)}: {problem.kind}: {problem.reason}")
        if report.old_format:
            say(
                f"{n_entries(len(report.old_format))} in the old entry format 1 (readable; a "
                "plaintext one carries no digest): re-record them, or `spark cache rotate-key` "
                "to rewrite them sealed."
            )
    if problems:
        raise CliError(
            f"{len(problems)} of {len(entries)} cache entries failed verification",
            verify_hint(target.store, target.config, problems, keyring),
        )
    if not as_json:
        say(f"OK: {n_entries(len(entries))} in {target.where}")


def _require_cache(target: CacheTarget, profile: str | None) -> None:
    """A cache directory to verify must exist: `OK: 0 entries` would pass a CI check on a typo."""
    if target.config.backend != "disk" or target.cache_dir.is_dir():
        return
    name = profile or target.settings.profile
    raise CliError(
        f"no cache directory at {target.cache_dir} (the cache of profile {name})",
        "Record the cache first, or fix the profile's dir in spark.toml (or give --dir).",
    )


def _shown(path: str) -> str:
    """``path`` relative to the current directory when it is below it (as git shows paths)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
