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
from pathlib import Path

import click

from spark.cache import KeyRing, admin, generate_key
from spark.cache.crypto import fingerprint
from spark.cache.exclusive import held_alone
from spark.cli._context import (
    CacheTarget,
    CliState,
    cache_target,
    dir_option,
    pass_state,
    profile_option,
)
from spark.cli._errors import CliError
from spark.cli._output import echo_json, json_option, say, warn
from spark.cli._output import entries as n_entries
from spark.cli._rotation import (
    Census,
    Plan,
    RotationRun,
    check_census,
    check_target,
    failed,
    interrupted,
    make_plan,
    reencrypt_all,
    resume_command,
    take_census,
)
from spark.cli._signals import StopOnSignal
from spark.errors import EncryptionKeyError

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
        say(f"Wrote key {fp} to {write_path} (mode 0600).")
        say(f'Use it in spark.toml: [cache] encrypt = true, key_file = "{write_path}"')
    else:
        say(key)
        say(f"key {fp}: store it as SPARK_CACHE_KEY; it is not saved anywhere", err=True)


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
    atomically; plaintext entries are encrypted too, and listed (one may have been planted:
    check them before committing). Ctrl-C (or SIGTERM) stops it after the
    entry in hand and prints how far it got and the exact command to resume; --resume then
    skips the entries already under the new key. An entry another process deletes or
    rewrites while it runs (a clear, an eviction, a refresh) is left as that process left it,
    and counted as deleted or rewritten meanwhile. Once every entry is re-encrypted, retire
    the old key by dropping it from the list.

    Nothing changes when the profile does not encrypt, when its cache is empty, when no
    profile is named (--profile or ENVIRONMENT) while another profile encrypts a cache of its
    own, when --resume lacks a key some entries are sealed with (that key is named), or when
    another rotate-key is running on the same cache (two would save two key lists): a lock in
    its directory, or on Redis the store's claim, which every machine of the fleet sees.

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
    named = profile is not None or bool(os.environ.get("ENVIRONMENT", "").strip())
    check_target(state, target, named, cache_dir)
    settings = target.settings
    command = resume_command(
        state.config_path, settings.profile if settings.profiles else None, cache_dir
    )
    with held_alone(target.manager, "rotate-key"):  # (two runs would save two key lists)
        _rotate(target, chosen, resume, command, yes, as_json)


def _rotate(
    target: CacheTarget, chosen: str | None, resume: bool, command: str, yes: bool, as_json: bool
) -> None:
    settings = target.settings
    plan = make_plan(target, chosen, resume, command)
    entries = admin.entry_files(target.store)
    where = f"the cache of profile {settings.profile} ({target.where})"
    census = take_census(target.store, entries)
    check_census(plan, census, resume, where)
    if not yes:
        plaintext = (
            f" ({census.plaintext} of them plaintext, to be sealed: see them first with"
            " `spark cache verify --require-encrypted`)"
            if census.plaintext
            else ""
        )
        click.confirm(
            f"Re-encrypt {n_entries(len(entries))}{plaintext} in {target.where} under key "
            f"{fingerprint(plan.new_key)}?",
            abort=True,
            err=True,
        )
    run = RotationRun(total=len(entries))
    with StopOnSignal() as stop:
        _save_keys(plan, as_json)
        try:
            reencrypt_all(
                target.store,
                entries,
                KeyRing.from_keys([plan.new_key]),
                KeyRing.from_keys(plan.keys),
                encrypt_plaintext=True,
                stop=stop,
                run=run,
            )
        except OSError as exc:
            raise CliError(
                f"rotation stopped at {entries[run.done].location} after {run.done} of "
                f"{n_entries(run.total)}: {exc}",
                f"Fix the cause (nothing is lost: every entry opens with the new key list). "
                f"{plan.resume_steps()}",
            ) from exc
    _report(target, plan, census, run, as_json)


# After a run that sealed plaintext entries: they now pass for recorded answers, so say which.
_SEALED_PLAINTEXT = (
    "Sealed {n} found in plaintext. A plaintext entry in a cache that encrypts may have been"
    " planted by anyone who can write to it: check these before you commit them."
)


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
        return _valid(new_key, "--new-key")
    return None


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
            f"{source}: not a valid Fernet key (44 characters of url-safe base64, as `spark "
            "cache keygen` prints them)",
            "Make one with `spark cache keygen`.",
        ) from None
    return key


def _save_keys(plan: Plan, as_json: bool) -> None:
    """Keep the new key list before any entry is sealed with it: in the key file, or printed
    as the value to store in the variable (printed now, not at the end: if the run is
    interrupted, the value is already in hand)."""
    if plan.key_file is not None:
        admin.write_key_file(plan.key_file, plan.keys, overwrite=True)
        if not as_json:
            say(f"Saved {len(plan.keys)} keys to {plan.key_file} (new key first).")
        return
    say("Store this as the secret (new key first, then the old ones):", err=as_json)
    say(plan.secret_line, err=as_json)
    say(
        f"(Paste it into your secret store or a hidden prompt such as `read -rs {plan.key_env}`;"
        " never type it on a command line.)",
        err=True,
    )


def _report(
    target: CacheTarget, plan: Plan, census: Census, run: RotationRun, as_json: bool
) -> None:
    new_fp = fingerprint(plan.new_key)
    if as_json:
        echo_json(
            {
                "cache_dir": target.cache_dir,
                "new_key_fingerprint": new_fp,
                "old_key_fingerprints": plan.old_fingerprints,
                "key_file": plan.key_file,
                **{o.name.lower(): run.outcomes[o.name.lower()] for o in admin.RotationOutcome},
                "failed": [{"path": p, "reason": r} for p, r in run.failures],
                "sealed_plaintext": run.sealed_plaintext,
                "done": run.done,
                "total": run.total,
                "interrupted": run.stopped_by or None,
                "resume": plan.command if run.stopped_by else None,
            }
        )
    else:
        counts = [
            f"{run.outcomes[o.name.lower()]} {o.value}"
            for o in admin.RotationOutcome
            if run.outcomes[o.name.lower()]
        ]
        say(f"Key {new_fp}: {', '.join(counts) or 'no entries'}.")
        for path, reason in run.failures:
            say(f"{path}: {reason}")
        if run.sealed_plaintext:
            say(_SEALED_PLAINTEXT.format(n=n_entries(len(run.sealed_plaintext))))
            for path in run.sealed_plaintext:
                say(f"  {path}")
    if run.stopped_by:
        if plan.key_file is None:  # the list again, next to the way to resume with it
            say(plan.secret_line, err=as_json)
        raise interrupted(plan, run)
    if run.failures:
        raise failed(plan, census, run)
    if plan.old_fingerprints and not as_json:
        say(
            f"To retire the old key(s) {', '.join(plan.old_fingerprints)}: once every machine "
            f"and CI secret uses the new list, drop them from {plan.holder}, keeping only the "
            "first key; `spark cache verify` then reports any entry still under an old key."
        )
