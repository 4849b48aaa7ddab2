"""``spark cache keygen`` and ``spark cache rotate-key``: make encryption keys and move to a new one.

Keys are secrets: a key file is created with mode 0600 and never overwritten by ``keygen``;
``rotate-key`` replaces it atomically. Rotation saves the new key list *before* it re-encrypts
the first entry, so an interruption never leaves entries sealed with a key that is stored
nowhere; re-running it skips what is done. A chosen new key never has to pass through a command
line (where other users see it in the process list, and the shell keeps it in its history):
``--new-key -`` reads it from standard input, ``--new-key-env NAME`` from a variable; a literal
``--new-key KEY`` still works, with a warning (docs/testing.md, "Rotate the key").
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import click

from spark.cache import KeyRing, admin, generate_key
from spark.cache.codec import CorruptEntryError
from spark.cache.crypto import fingerprint
from spark.cache.stores.base import EntryRef
from spark.cli._context import (
    CacheTarget,
    CliState,
    cache_target,
    dir_option,
    pass_state,
    profile_option,
)
from spark.cli._errors import CliError
from spark.cli._output import echo_json, json_option, progress, warn
from spark.cli._output import entries as n_entries
from spark.errors import CacheError, DecryptionError, EncryptionKeyError

__all__ = ["keygen", "rotate_key"]

# How a chosen key reaches rotate-key without passing through a command line.
_SAFE_FORMS = "`--new-key -` (standard input) or `--new-key-env NAME` (an environment variable)"


@click.command(short_help="Make a new encryption key.")
@click.option(
    "--write",
    "write_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Create a key file (mode 0600) holding the key, instead of printing it.",
)
@json_option
def keygen(write_path: Path | None, as_json: bool) -> None:
    """Make a new Fernet key for cache encryption.

    Prints the key, to store as the secret SPARK_CACHE_KEY (e.g. a CI secret). With --write
    it creates a key file readable only by you (an existing file is never overwritten); name it
    in spark.toml as key_file and keep it out of git.
    """
    key = generate_key()
    fp = fingerprint(key)
    if write_path is not None:
        try:
            admin.write_key_file(write_path, [key], overwrite=False)
        except FileExistsError:
            raise CliError(
                f"{write_path} already exists; a key file is never overwritten",
                "Choose another path (to move to a new key, use `spark cache rotate-key`).",
            ) from None
    if as_json:
        echo_json({"fingerprint": fp, "path": write_path, "key": None if write_path else key})
    elif write_path is not None:
        click.echo(f"Wrote key {fp} to {write_path} (mode 0600).")
        click.echo(f'Use it in spark.toml: [cache] encrypt = true, key_file = "{write_path}"')
    else:
        click.echo(key)
        click.echo(f"key {fp}: store it as SPARK_CACHE_KEY; it is not saved anywhere", err=True)


@dataclass
class _Plan:
    """Where a rotation goes: the new key, the full key list, and where that list is kept."""

    new_key: str
    keys: list[str]
    old_fingerprints: list[str]
    key_file: Path | None  # None: the keys live in the environment variable
    key_env: str
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def secret_line(self) -> str:
        """``SPARK_CACHE_KEY=new,old``: the value to store when the keys live in a variable."""
        return f"{self.key_env}={','.join(self.keys)}"


@click.command("rotate-key", short_help="Re-encrypt every entry under a new key.")
@click.option(
    "--new-key",
    metavar="KEY|-",
    help="The new key; - reads it from standard input. Default: a freshly generated one. "
    "(A literal KEY is visible to other users: prefer - or --new-key-env.)",
)
@click.option(
    "--new-key-env",
    metavar="NAME",
    help="Read the new key from the environment variable NAME.",
)
@click.option(
    "--resume", is_flag=True, help="Finish an interrupted rotation: use the current first key."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@profile_option
@dir_option
@json_option
@pass_state
def rotate_key(
    state: CliState,
    new_key: str | None,
    new_key_env: str | None,
    resume: bool,
    yes: bool,
    profile: str | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Re-encrypt every entry under a new key, keeping its timestamps.

    The new key list (the new key first, then the old ones) is saved before any entry is
    touched: written to the profile's key_file (mode 0600) when one is configured, otherwise
    printed as the value of SPARK_CACHE_KEY to store as the secret. Each entry is rewritten
    atomically; plaintext entries are encrypted too when the profile encrypts. If it stops
    half-way, run it again with --resume (or give the same new key again): entries already
    under the new key are skipped. Once every entry is re-encrypted, retire the old key by
    dropping it from the list.

    To choose the new key, keep it off the command line:

    \b
        spark cache rotate-key --new-key - < new.key     # from standard input
        spark cache rotate-key --new-key-env NEW_KEY     # from a variable
    """
    if new_key is not None and new_key_env is not None:
        raise click.UsageError("give either --new-key or --new-key-env, not both")
    if resume and (new_key is not None or new_key_env is not None):
        raise click.UsageError("give either --resume or a new key, not both")
    chosen = _chosen_key(new_key, new_key_env)
    target = cache_target(state, profile, cache_dir)
    plan = _plan(target, chosen, resume)
    entries = admin.entry_files(target.store)
    if entries and not yes:
        click.confirm(
            f"Re-encrypt {n_entries(len(entries))} in {target.where} under key "
            f"{fingerprint(plan.new_key)}?",
            abort=True,
            err=True,
        )
    _save_keys(plan, as_json)
    _rotate(target, plan, entries)
    _report(target, plan, as_json)


def _chosen_key(new_key: str | None, new_key_env: str | None) -> str | None:
    """The new key the command line chose, without it having to be on the command line."""
    if new_key_env is not None:
        value = os.environ.get(new_key_env, "").strip()
        if not value:
            raise CliError(
                f"--new-key-env: the environment variable {new_key_env} is not set (or empty)",
                f"Set {new_key_env} to the new key (e.g. from your secret store) and run again.",
            )
        return _valid(value, f"the environment variable {new_key_env}")
    if new_key == "-":
        return _valid(_read_stdin_key(), "standard input")
    if new_key is not None:
        warn(
            "a key given on the command line is visible to other users (in the process list) "
            f"and is kept in your shell history; give it with {_SAFE_FORMS} instead"
        )
    return new_key


def _read_stdin_key() -> str:
    """One key from standard input: typed at a hidden prompt on a terminal, else its first
    line that is not blank or a ``#`` comment (as in a key file; a confirmation may follow on
    the next line)."""
    stdin = sys.stdin
    key = ""
    if stdin.isatty():
        typed: str = click.prompt("New key", hide_input=True, err=True)
        key = typed.strip()
    else:
        while not key:
            line = stdin.readline()
            if not line:
                break
            key = "" if line.startswith("#") else line.strip()
    if not key:
        raise CliError(
            "--new-key -: no key on standard input",
            "Pipe it in, e.g. `spark cache rotate-key --new-key - < new.key`.",
        )
    return key


def _valid(key: str, source: str) -> str:
    """``key`` when it is one well-formed Fernet key (the error names where it came from)."""
    if "," in key:
        raise CliError(
            f"{source} holds several keys; the new key is one key",
            "Give only the new key; the old ones come from the profile's key_env or key_file.",
        )
    try:
        KeyRing.from_keys([key])
    except EncryptionKeyError:
        raise CliError(
            f"{source} does not hold a valid Fernet key (32 url-safe base64-encoded bytes)",
            "Make one with `spark cache keygen`.",
        ) from None
    return key


def _resume_hint(plan: _Plan) -> str:
    """How to finish an interrupted rotation, with no key typed on a command line."""
    if plan.key_file is not None:
        return "run `spark cache rotate-key --resume` to finish"
    return (
        f"finish with `spark cache rotate-key --resume` once {plan.key_env} holds that list (set "
        f"it without typing it on a command line: your secret store, or `read -rs "
        f"{plan.key_env} && export {plan.key_env}` in a shell), or give the new key (the first "
        f"of the list) again with {_SAFE_FORMS}"
    )


def _plan(target: CacheTarget, new_key: str | None, resume: bool) -> _Plan:
    config = target.config
    old_keys, source = admin.configured_keys(config.key_env, config.key_file, os.environ)
    if resume:
        if not old_keys:
            raise CliError(f"--resume: no key is configured ({config.key_env} or key_file)")
        new_key = old_keys[0]
    new_key = (new_key or generate_key()).strip()
    KeyRing.from_keys([new_key])  # a malformed --new-key fails here, before anything changes
    keys = list(dict.fromkeys([new_key, *old_keys]))
    olds = [fingerprint(k) for k in keys[1:]]
    in_file = source == "file" or (source == "" and config.key_file is not None)
    key_file = Path(config.key_file).expanduser() if in_file and config.key_file else None
    if source == "env" and config.key_file:
        warn(f"{config.key_env} is set, so it is used instead of the key file {config.key_file}")
    if not config.encrypt:
        warn("encryption is off for this profile: new entries are written in plaintext")
    return _Plan(new_key, keys, olds, key_file, config.key_env)


def _save_keys(plan: _Plan, as_json: bool) -> None:
    if plan.key_file is not None:
        admin.write_key_file(plan.key_file, plan.keys, overwrite=True)
        if not as_json:
            click.echo(f"Saved {len(plan.keys)} keys to {plan.key_file} (new key first).")
        return
    # Printed now, not at the end: if the run is interrupted the value is already in hand.
    click.echo("Store this as the secret (new key first, then the old ones):", err=as_json)
    click.echo(plan.secret_line, err=as_json)
    click.echo(
        f"(Paste it into your secret store or a hidden prompt such as `read -rs {plan.key_env}`;"
        " never type it on a command line.)",
        err=True,
    )


def _rotate(target: CacheTarget, plan: _Plan, entries: list[EntryRef]) -> None:
    goal = KeyRing.from_keys([plan.new_key])
    readers = KeyRing.from_keys(plan.keys)
    store = target.store
    for done, entry in enumerate(progress(entries, "Re-encrypting")):
        try:
            outcome = admin.reencrypt_entry(
                store, entry, goal, readers, encrypt_plaintext=target.config.encrypt
            )
        except (CorruptEntryError, DecryptionError) as exc:
            plan.failures.append((entry.location, str(exc)))
            continue
        except OSError as exc:
            where = plan.key_file or f"the {plan.key_env} value printed above"
            raise CacheError(
                f"rotation stopped at {entry.location} after {done} of {len(entries)} entries: "
                f"{exc}. The new key list is in {where}; fix the cause, then "
                f"{_resume_hint(plan)}"
            ) from exc
        plan.outcomes[outcome.name.lower()] += 1


def _report(target: CacheTarget, plan: _Plan, as_json: bool) -> None:
    new_fp = fingerprint(plan.new_key)
    if as_json:
        echo_json(
            {
                "cache_dir": target.cache_dir,
                "new_key_fingerprint": new_fp,
                "old_key_fingerprints": plan.old_fingerprints,
                "key_file": plan.key_file,
                **{o.name.lower(): plan.outcomes[o.name.lower()] for o in admin.RotationOutcome},
                "failed": [{"path": p, "reason": r} for p, r in plan.failures],
            }
        )
    else:
        counts = [
            f"{plan.outcomes[o.name.lower()]} {o.value}"
            for o in admin.RotationOutcome
            if plan.outcomes[o.name.lower()]
        ]
        click.echo(f"Key {new_fp}: {', '.join(counts) or 'no entries'}.")
        for path, reason in plan.failures:
            click.echo(f"{path}: {reason}")
    if plan.failures:
        raise CliError(
            f"{n_entries(len(plan.failures))} could not be re-encrypted (listed above)",
            "They still need a key you do not hold, or are corrupt: delete them (or supply their "
            f"key), then {_resume_hint(plan)}, before retiring any key.",
        )
    if plan.old_fingerprints and not as_json:
        where = plan.key_file or plan.key_env
        click.echo(
            f"To retire the old key(s) {', '.join(plan.old_fingerprints)}: once every machine "
            f"and CI secret uses the new list, drop them from {where}, keeping only the first "
            "key; `spark cache verify` then reports any entry still under an old key."
        )
