"""``spark cache migrate``: re-key the entries recorded under an older key schema."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from spark.cache import admin
from spark.cache.keys import KEY_SCHEMA_VERSION
from spark.cli._context import CliState, cache_target, dir_option, pass_state, profile_option
from spark.cli._errors import CliError, verify_hint
from spark.cli._output import echo_json, json_option, progress, say
from spark.cli._output import entries as n_entries
from spark.models.migrate import MigrationOutcome, migrate_entry

__all__ = ["migrate"]


@click.command(short_help="Re-key entries recorded under an older key schema.")
@click.option("--dry-run", is_flag=True, help="Say what would be re-keyed; change nothing.")
@profile_option
@dir_option
@json_option
@pass_state
def migrate(
    state: CliState, dry_run: bool, profile: str | None, cache_dir: Path | None, as_json: bool
) -> None:
    """Re-key the entries recorded under an older key schema, so they are hit again.

    When an upgrade of Spark changes how requests are keyed (the key schema), the entries
    recorded before it are never hit: replay reports the schema they were recorded under.
    This command re-derives each one's request under the current schema and moves the entry
    to its new key (same answer, same timestamps, sealed as before). Entries whose request
    cannot be re-derived are listed and left as they are: re-record them. In a cache that
    encrypts, a plaintext entry is refused and left, as every read refuses it (`spark cache
    rotate-key` seals the plaintext entries you trust). Exits 1 when any entry could not be
    re-keyed. Run it again after an interruption: it finishes the work.

    \b
        spark cache migrate --profile testing     # then commit the re-keyed cache
    """
    target = cache_target(state, profile, cache_dir)
    keyring = target.keyring()
    entries = admin.entry_files(target.store)
    results = [
        migrate_entry(target.store, entry, keyring, seal=target.config.encrypt, dry_run=dry_run)
        for entry in progress(entries, "Migrating")
    ]
    counts = Counter(result.outcome for result in results)
    failed = [result for result in results if result.outcome is MigrationOutcome.CANNOT]
    if not dry_run:
        target.store.after_clear()
    if as_json:
        echo_json(
            {
                "key_schema": KEY_SCHEMA_VERSION,
                "checked": len(entries),
                "rekeyed": counts[MigrationOutcome.REKEYED],
                "current": counts[MigrationOutcome.CURRENT],
                "dry_run": dry_run,
                "cannot": [{"path": r.location, "reason": r.reason} for r in failed],
            }
        )
    else:
        for result in failed:
            say(f"{result.location}: {result.reason}")
        verb = "Would re-key" if dry_run else "Re-keyed"
        say(
            f"{verb} {n_entries(counts[MigrationOutcome.REKEYED])} to key schema "
            f"v{KEY_SCHEMA_VERSION}; {counts[MigrationOutcome.CURRENT]} already current "
            f"(in {target.where})."
        )
    if failed:
        problems = [admin.EntryProblem(r.location, "", r.kind, r.reason) for r in failed if r.kind]
        redo = "Re-record them (run the calls once with mode read_write, or pytest "
        redo += "--spark-cache=record) and commit the new entries."
        hint = verify_hint(target.store, target.config, problems, keyring) if problems else ""
        raise CliError(
            f"{len(failed)} of {len(entries)} cache entries could not be re-keyed",
            "\n".join(line for line in (hint, "" if all(r.kind for r in failed) else redo) if line),
        )
