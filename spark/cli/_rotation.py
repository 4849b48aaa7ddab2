"""The rotation behind ``spark cache rotate-key``: its plan, the checks, the run, a clean stop.

Before anything changes, the cache is checked: the profile must encrypt, be the one meant (no
profile named while another profile encrypts its own cache is a question, not a guess) and
hold entries. :func:`take_census` counts the entries by the key that sealed them, so a key
that is missing is named once, by fingerprint: ``--resume`` is refused without it (it is
almost surely the new key of the rotation to finish), and a fresh rotation's report ends with
it. :func:`reencrypt_all` then rewrites the entries one at a time; under ``StopOnSignal``
(``_signals.py``), Ctrl-C (SIGINT) or SIGTERM lets the entry in hand finish and ends the loop
there, and :func:`interrupted` says how far it got and the exact way to resume.
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spark.cache import CacheConfig, KeyRing, admin, generate_key, reader
from spark.cache.codec import CorruptEntryError
from spark.cache.crypto import fingerprint
from spark.cache.reader import StoredEntry, Where
from spark.cache.stores.base import EntryRef, EntryStore
from spark.cli._context import CacheTarget, CliState
from spark.cli._errors import CliError, stopped_by_signal
from spark.cli._output import entries as n_entries
from spark.cli._output import progress, warn
from spark.cli._signals import StopOnSignal
from spark.errors import ConfigError, DecryptionError

__all__ = [
    "Census",
    "Plan",
    "RotationRun",
    "check_census",
    "check_target",
    "failed",
    "interrupted",
    "make_plan",
    "reencrypt_all",
    "resume_command",
    "take_census",
]


@dataclass(frozen=True)
class Census:
    """The entries of a cache by what seals them: a key fingerprint, or nothing (plaintext)."""

    total: int
    sealed: Counter[str]
    plaintext: int

    def missing(self, held: Sequence[str]) -> dict[str, int]:
        """Fingerprint -> entry count, for every sealing key not in ``held``."""
        return {fp: count for fp, count in self.sealed.items() if fp not in held}


def take_census(store: EntryStore, entries: Sequence[EntryRef]) -> Census:
    """Read the envelope of every entry (never a payload). Unreadable entries are not counted:
    the rotation reports each of them."""
    sealed: Counter[str] = Counter()
    plaintext = 0
    for entry in entries:
        head = reader.read_entry(
            store, entry.location, where=Where.of(entry), with_payload=False, touch=False
        )
        if not isinstance(head, StoredEntry):
            continue
        if head.meta.sealed:
            sealed[head.meta.key_fingerprint] += 1
        else:
            plaintext += 1
    return Census(len(entries), sealed, plaintext)


@dataclass
class RotationRun:
    """What a run did: outcomes by name, the entries it could not rewrite, how far it got, and
    the signal that stopped it (None: it went to the end)."""

    total: int
    done: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)
    sealed_plaintext: list[str] = field(default_factory=list)  # entries it encrypted
    stopped_by: str = ""

    @property
    def rewritten(self) -> int:
        """Entries sealed anew by this run (re-encrypted, or encrypted from plaintext)."""
        return self.outcomes["reencrypted"] + self.outcomes["encrypted"]


def reencrypt_all(
    store: EntryStore,
    entries: Sequence[EntryRef],
    goal: KeyRing,
    readers: KeyRing,
    *,
    encrypt_plaintext: bool,
    stop: StopOnSignal,
    run: RotationRun,
) -> None:
    """Seal every entry under ``goal``'s key (``admin.reencrypt_entry``) and record it in
    ``run``, checking ``stop`` before each one. ``OSError`` (a full disk, a store gone)
    propagates with ``entries[run.done]`` the entry it stopped at."""
    for entry in progress(entries, "Re-encrypting"):  # (a break closes the bar)
        if stop.received is not None:
            run.stopped_by = stop.name
            break
        try:
            outcome = admin.reencrypt_entry(
                store, entry, goal, readers, encrypt_plaintext=encrypt_plaintext
            )
        except (CorruptEntryError, DecryptionError) as exc:
            # (the error names the path itself; the report puts the path first, once)
            run.failures.append((entry.location, str(exc).removeprefix(f"{entry.location}: ")))
        else:
            run.outcomes[outcome.name.lower()] += 1
            if outcome is admin.RotationOutcome.ENCRYPTED:
                run.sealed_plaintext.append(entry.location)
        run.done += 1


# -- the plan: which keys, where they are kept, how to resume ---------------------------------


@dataclass
class Plan:
    """Where a rotation goes: the new key, the full key list (new first), where that list is
    kept (a key file, or the variable ``key_env`` the user stores it in), the fingerprints of
    the keys configured before it, and the command that resumes it."""

    new_key: str
    keys: list[str]
    held: list[str]
    key_file: Path | None
    key_env: str
    command: str

    @property
    def secret_line(self) -> str:
        """``SPARK_CACHE_KEY=new,old``: the value to store when the keys live in a variable."""
        return f"{self.key_env}={','.join(self.keys)}"

    @property
    def fingerprints(self) -> list[str]:
        """The fingerprints of the whole list, new key first."""
        return [fingerprint(key) for key in self.keys]

    @property
    def old_fingerprints(self) -> list[str]:
        """The keys after the new one: to retire once every entry is under the new key."""
        return [fingerprint(key) for key in self.keys[1:]]

    @property
    def holder(self) -> str:
        """Where the configured keys are, for messages."""
        return f"the key file {self.key_file}" if self.key_file is not None else self.key_env

    def set_list(self) -> str:
        """How to put the new key list where ``--resume`` reads it, no key on a command line."""
        if self.key_file is not None:
            return f"The key list (new key first) is saved in {self.key_file}."
        prints = ", ".join(fingerprint(key) for key in self.keys)
        return (
            f"Put the key list (keys {prints}, new key first: the value of the "
            f"{self.key_env}= line printed above) in {self.key_env} without typing it on a "
            f"command line: `read -rs {self.key_env} && export {self.key_env}`, then paste it."
        )

    def resume_steps(self) -> str:
        """The exact way to finish an interrupted rotation."""
        return f"{self.set_list()}\nThen finish with:\n  {self.command}"


def resume_command(config_path: Path | None, profile: str | None, cache_dir: Path | None) -> str:
    """The exact ``spark cache rotate-key --resume`` command line for the same cache (no key on
    it: the keys come from the key file or the environment variable)."""
    words = ["spark"]
    if config_path is not None:
        words += ["--config", str(config_path)]
    words += ["cache", "rotate-key", "--resume"]
    if profile is not None:
        words += ["--profile", profile]
    if cache_dir is not None:
        words += ["--dir", str(cache_dir)]
    return shlex.join(words)


def make_plan(target: CacheTarget, new_key: str | None, resume: bool, command: str) -> Plan:
    """The key list of the rotation: ``new_key`` (``--resume``: the first configured key; none
    chosen: a fresh one) before the configured keys. A malformed key fails here, before
    anything changes."""
    config = target.config
    old_keys, source = admin.configured_keys(config.key_env, config.key_file, os.environ)
    if resume:
        if not old_keys:
            file_too = f" or the key file {config.key_file}" if config.key_file else ""
            raise CliError(
                f"--resume: no key is configured ({config.key_env}{file_too})",
                "Put the key list the interrupted rotation printed (new key first) in "
                f"{config.key_env} without typing it on a command line (`read -rs "
                f"{config.key_env} && export {config.key_env}`, then paste it), then run "
                f"`{command}` again.",
            )
        new_key = old_keys[0]
    new_key = (new_key or generate_key()).strip()
    if old_keys:  # (the new key was checked where it was given)
        held_in = f"the key file {config.key_file}" if source == "file" else None
        KeyRing.from_keys(old_keys, held_in or f"the environment variable {config.key_env}")
    keys = list(dict.fromkeys([new_key, *old_keys]))
    in_file = source == "file" or (source == "" and config.key_file is not None)
    key_file = Path(config.key_file).expanduser() if in_file and config.key_file else None
    if source == "env" and config.key_file:
        warn(f"{config.key_env} is set, so it is used instead of the key file {config.key_file}")
    held = [fingerprint(key) for key in old_keys]
    return Plan(new_key, keys, held, key_file, config.key_env, command)


# -- the checks: the cache meant, one that encrypts, entries, every sealing key at hand --------


def _place(config: CacheConfig) -> str:
    """Where a profile's cache is, for messages (never a Redis URL: it may hold a password)."""
    return (
        str(config.resolved_dir) if config.backend == "disk" else f"Redis, prefix {config.prefix}"
    )


def _encrypting_profiles(state: CliState, target: CacheTarget) -> list[tuple[str, str]]:
    """(name, place) of every other profile whose cache encrypts, elsewhere than ``target``."""
    found = []
    here = _place(target.config)
    for name in target.settings.profiles:
        if name == target.settings.profile:
            continue
        try:
            config = state.settings(name).cache_config()
        except ConfigError:
            continue  # a broken profile is `spark config validate`'s to report
        if config.encrypt and _place(config) != here:
            found.append((name, _place(config)))
    return found


def check_target(state: CliState, target: CacheTarget, named: bool, cache_dir: Path | None) -> None:
    """Refuse a cache that does not encrypt, and a guess: no profile named (``--profile`` or
    ``ENVIRONMENT``) while another profile encrypts a cache of its own."""
    profile = target.settings.profile
    others = _encrypting_profiles(state, target)
    with_dir = f" --dir {shlex.quote(str(cache_dir))}" if cache_dir is not None else ""
    choices = "; ".join(
        f"`spark cache rotate-key --profile {shlex.quote(name)}{with_dir}` ({place})"
        for name, place in others
    )
    if not target.config.encrypt:
        raise CliError(
            f"profile {profile} does not encrypt its cache ({_place(target.config)}): "
            "there is no key to rotate",
            f"To rotate the key of a cache that encrypts, name its profile: {choices}."
            if others
            else "To encrypt this cache, set encrypt = true (with key_env or key_file) for it "
            "in spark.toml; `spark cache keygen` makes a key.",
        )
    if not named and others:
        raise CliError(
            f"no profile named: the active one, {profile} ({target.settings.profile_source}), "
            f"encrypts {_place(target.config)}, and other profiles encrypt caches of their own",
            f"Name the cache to rotate: `spark cache rotate-key --profile {shlex.quote(profile)}"
            f"{with_dir}`, or {choices}.",
        )


def check_census(plan: Plan, census: Census, resume: bool, where: str) -> None:
    """Refuse a rotation that has nothing to do, and a ``--resume`` that lacks a key some
    entries are sealed with (most likely the new key of the rotation it is to finish)."""
    if census.total == 0:
        raise CliError(
            f"nothing to rotate: {where} holds no entries",
            "Record entries first, or name the cache that holds them with --profile or --dir.",
        )
    if not resume:
        return
    if census.missing(plan.fingerprints):
        raise CliError(
            f"--resume: {_missing_keys(plan, census)}; nothing was changed",
            "If it is the new key of the interrupted rotation, put the key list that rotation "
            f"printed (new key first) in {plan.holder}{_safely(plan)}, then run "
            f"`{plan.command}` again.{_LOST}",
        )
    if len(plan.keys) == 1 and census.sealed.get(plan.fingerprints[0], 0) == census.total:
        raise CliError(
            f"--resume: every entry is already under key {plan.fingerprints[0]}, the only "
            f"key in {plan.holder}: there is no rotation to finish",
            "To finish an interrupted rotation, put the key list it printed (new key first) in "
            f"{plan.holder}; to move to a new key, run `spark cache rotate-key` without "
            "--resume.",
        )


def failed(plan: Plan, census: Census, run: RotationRun) -> CliError:
    """The error of a run that could not re-encrypt some entries (each one listed already):
    the keys they need first, when that is why."""
    message = f"{n_entries(len(run.failures))} could not be re-encrypted (listed above)"
    if census.missing(plan.fingerprints):
        return CliError(
            f"{message}: {_missing_keys(plan, census)}",
            f"Add that key to {plan.holder} after the keys there{_safely(plan)}, then finish "
            f"with `{plan.command}`.{_LOST}",
        )
    return CliError(
        message,
        "They are damaged or were tampered with (`spark cache verify` says which and why); "
        "re-record them, then retire the old key(s) "
        f"{', '.join(plan.old_fingerprints)}.",
    )


_LOST = (
    " If that key is lost for good, no one can open those entries: re-record them "
    "(`spark cache verify` lists them)."
)


def _missing_keys(plan: Plan, census: Census) -> str:
    """``N of M entries are sealed with key X, which SPARK_CACHE_KEY does not hold (...)``."""
    missing = census.missing(plan.fingerprints)
    which = (
        f"key {next(iter(missing))}"
        if len(missing) == 1
        else "keys " + ", ".join(f"{fp} ({n_entries(n)})" for fp, n in missing.items())
    )
    holds = ", ".join(plan.held) or "no key"
    return (
        f"{sum(missing.values())} of {n_entries(census.total)} are sealed with {which}, which "
        f"{plan.holder} does not hold (it holds {holds})"
    )


def _safely(plan: Plan) -> str:
    """How to change the variable without typing a key on a command line."""
    if plan.key_file is not None:
        return " (one key per line)"
    return (
        f" without typing it on a command line (`read -rs {plan.key_env} && export "
        f"{plan.key_env}`, then paste it)"
    )


def interrupted(plan: Plan, run: RotationRun) -> CliError:
    """The error of a run stopped by a signal (exit status 128 + the signal's number)."""
    return stopped_by_signal(
        run.stopped_by,
        f"rotate-key interrupted ({run.stopped_by}) after {run.done} of "
        f"{n_entries(run.total)} ({run.rewritten} sealed anew); {run.total - run.done} still "
        "to do, and every entry opens with the new key list",
        plan.resume_steps(),
    )
