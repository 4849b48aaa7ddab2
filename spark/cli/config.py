"""``spark config``: check spark.toml, show where each setting comes from, write a starter file."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any, NoReturn

import click

from spark.cache import KeyRing
from spark.cache.crypto import read_key_file
from spark.cli._context import CliState, pass_state, profile_option
from spark.cli._errors import CliError
from spark.cli._output import echo_json, json_option, print_table, say, warn
from spark.config import CONFIG_FILE_NAME, Settings, render_default_toml
from spark.config.problems import problem_message
from spark.errors import ConfigError, EncryptionKeyError

__all__ = ["config"]

_STARTER_HEADER = """\
# Spark configuration: see docs/configuration.md.
# ENVIRONMENT picks the profile ([spark] default_profile when it is unset); each
# [profiles.<name>] table is deep-merged over the rest of this file.

"""


@click.group(short_help="Check and explain spark.toml.")
def config() -> None:
    """Check and explain spark.toml, the file of profiles and cache rules."""


@config.command(short_help="Check spark.toml and the environment.")
@profile_option
@click.option("--all-profiles", is_flag=True, help="Check every profile, not only the active one.")
@click.option(
    "--strict",
    is_flag=True,
    help="Also refuse what any command would refuse here: an encryption key that is missing or "
    "malformed, a key file others can read, a cache dir that cannot be made.",
)
@json_option
@pass_state
def validate(
    state: CliState, profile: str | None, all_profiles: bool, strict: bool, as_json: bool
) -> None:
    """Check spark.toml and the environment for the active profile.

    Prints `OK: <file> (profile P, N models)`, or every problem, one per line, and exits 1.
    What depends on this machine rather than on the file (an encrypted cache whose key is not
    here, a malformed key in the key variable, a key file others can read or that holds no
    key, a cache dir a file stands in the way of) is printed as a warning naming its profile; --strict makes each one an error, as
    every command using that cache would. Suitable for CI and pre-commit hooks.
    """
    try:
        active = state.settings(profile)
    except ConfigError as exc:
        _fail(as_json, None, [*(exc.problems or [str(exc)]), *exc.elsewhere])
    if active.path is None:
        raise CliError(
            f"no {CONFIG_FILE_NAME} found in {Path.cwd()} or its parents",
            "Create one with `spark config init`, or name it with --config or SPARK_CONFIG.",
        )
    names = active.profiles if all_profiles and active.profiles else [active.profile]
    checked, problems = _check_profiles(state, active, names, strict, all_profiles)
    if problems:
        _fail(as_json, active.path, problems)
    if as_json:
        echo_json({"ok": True, "file": active.path, "profiles": checked, "problems": []})
        return
    for report in checked:
        for line in report["warnings"]:
            warn(line)
        count = len(report["models"])
        noun = "model" if count == 1 else "models"
        say(f"OK: {active.path} (profile {report['profile']}, {count} {noun})")


def _check_profiles(
    state: CliState, active: Settings, names: list[str], strict: bool, all_profiles: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """A report per profile that loads cleanly, and every problem, each naming its profile.

    With one profile, the problems the file has in the other profiles (they name their own
    table) are reported too; with every profile, each profile reports its own.
    """
    checked: list[dict[str, Any]] = []
    problems: list[str] = []
    for name in names:
        try:
            settings = active if name == active.profile else state.settings(name)
        except ConfigError as exc:
            problems += [f"profile {name}: {line}" for line in exc.problems or [str(exc)]]
            continue
        if not all_profiles:
            try:
                settings.validate()
            except ConfigError as exc:
                problems += exc.problems or [str(exc)]
        machine = [*settings.warnings, *_key_checks(settings), *_dir_checks(settings)]
        local = [f"profile {name}: {line}" for line in machine]
        if strict:
            problems += local
        checked.append(
            {
                "profile": name,
                "models": settings.model_aliases,
                "warnings": [] if strict else local,
            }
        )
    return checked, list(dict.fromkeys(problems))


def _key_checks(settings: Settings) -> list[str]:
    """What loading the keys of each cache of ``settings`` would refuse on this machine.

    A cache that is on reads its key variable (and its key file when the variable is unset)
    even when it does not encrypt, so a malformed key breaks it too; a key file is checked
    whenever it exists, since others being able to read it is a leak of its own.
    """
    found: list[str] = []
    seen: set[tuple[str, str]] = set()
    for alias in [None, *settings.model_aliases]:
        rules = settings.cache_config(alias)
        source = (rules.key_env, str(rules.key_file or ""))
        if not (rules.enabled or rules.encrypt) or source in seen:
            continue
        seen.add(source)
        found += _malformed(rules.key_env, os.environ.get(rules.key_env, ""))
        if rules.key_file:
            found += _key_file_problems(
                Path(rules.key_file).expanduser(),
                needed=rules.enabled and rules.encrypt and not os.environ.get(rules.key_env),
            )
    return found


def _dir_checks(settings: Settings) -> list[str]:
    """A cache directory that cannot be one on this machine: it is a file, or a file stands
    where one of its parents would be (every write would fail; a read finds nothing)."""
    found: list[str] = []
    seen: set[Path] = set()
    for alias in [None, *settings.model_aliases]:
        rules = settings.cache_config(alias)
        directory = rules.resolved_dir
        if not rules.enabled or rules.backend != "disk" or directory in seen:
            continue
        seen.add(directory)
        blocker = next((p for p in (directory, *directory.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            where = "is a file" if blocker == directory else f"cannot be made: {blocker} is a file"
            found.append(f"cache dir {directory} {where} (fix dir in spark.toml)")
    return found


def _malformed(where: str, value: str) -> list[str]:
    """A line for each key of a comma-separated list that is not a Fernet key (never the key
    itself: it is a secret)."""
    keys = [key.strip() for key in value.split(",") if key.strip()]
    problems = []
    for position, key in enumerate(keys, start=1):
        try:
            KeyRing.from_keys([key])
        except EncryptionKeyError:
            problems.append(
                f"{where}: key #{position} of {len(keys)} is not a valid Fernet key (44 "
                "characters of url-safe base64, as `spark cache keygen` prints them): every "
                "command using this cache refuses it"
            )
    return problems


def _key_file_problems(path: Path, *, needed: bool) -> list[str]:
    """What is wrong with the key file at ``path``: others can read it, it cannot be read, a
    key in it is malformed, or (when the cache needs it) it holds no key."""
    if not path.exists():
        return []  # a key file not there yet is the missing-key warning's
    try:
        keys = read_key_file(path)
    except EncryptionKeyError as exc:
        return [str(exc)]
    problems = _malformed(f"key file {path}", ",".join(keys))
    if needed and not keys:
        problems.append(
            f"key file {path} holds no key (one key per line): the cache encrypts and "
            "cannot be used without one"
        )
    return problems


def _fail(as_json: bool, path: Path | None, problems: list[str]) -> NoReturn:
    if as_json:
        echo_json({"ok": False, "file": path, "profiles": [], "problems": problems})
        raise click.exceptions.Exit(1)
    raise ConfigError(problem_message(problems), problems)


@config.command(short_help="Show each resolved setting and its source.")
@profile_option
@click.option("--model", "alias", metavar="ALIAS", help="Show one model alias (default: [cache]).")
@json_option
@pass_state
def show(state: CliState, profile: str | None, alias: str | None, as_json: bool) -> None:
    """Show every resolved setting and where its value came from.

    Sources, lowest first: default, spark.toml tables, the profile's [profiles.<name>] table,
    profiles/<name>.toml, environment variables (env SPARK_...), arguments. Without --model
    it shows the [cache] rules; with it, that alias's cache rules, provider and options.
    """
    settings = state.settings(profile)
    values = [
        {"name": v.name, "value": v.value, "source": v.source} for v in settings.explain(alias)
    ]
    if as_json:
        echo_json(
            {
                "file": settings.path,
                "profile": settings.profile,
                "model": alias,
                "values": values,
                "models": settings.model_aliases,
                "warnings": settings.warnings,
            }
        )
        return
    for line in settings.warnings:
        warn(line)
    where = settings.path or "no spark.toml (built-in defaults)"
    target = f"[models.{alias}]" if alias else "[cache]"
    say(f"{where}, profile {settings.profile}, {target}")
    print_table(
        ["Setting", "Value", "Source"],
        [(v["name"], _show(v["value"]), v["source"]) for v in values],
    )
    if alias is None and settings.model_aliases:
        aliases = ", ".join(settings.model_aliases)
        say(f"models: {aliases} (see one with --model ALIAS)")


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


@config.command(short_help="Write a starter spark.toml.")
@click.option(
    "--path",
    "path_text",
    metavar="PATH",
    default=CONFIG_FILE_NAME,
    show_default=True,
    help="Where to write it (a directory, or a path ending in /, gets a spark.toml inside).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path_text: str, force: bool) -> None:
    """Write a starter spark.toml: a cache-off base and the four usual profiles.

    development (cache on, 1 day), testing (30 days, encrypted, replay-only, under
    tests/llm_cache), staging (1 hour) and production (off, but embeddings cached for a week).
    An existing file is never overwritten without --force.
    """
    target = _init_target(path_text)
    if target.exists() and not force:
        raise CliError(f"{target} already exists", "Use --force to overwrite it.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_STARTER_HEADER + render_default_toml(), encoding="utf-8")
    except OSError as exc:
        blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
        what = f"{blocker} is a file, not a directory" if blocker else exc.strerror or str(exc)
        raise CliError(f"cannot write {target}: {what}", "Choose another --path.") from exc
    here = target.parent.resolve() == Path.cwd().resolve()
    check = (
        "spark config validate"
        if here
        else f"spark --config {shlex.quote(str(target))} config validate"
    )
    say(f"Wrote {target}. Check it with `{check}`.")


def _init_target(path_text: str) -> Path:
    """The file ``--path`` means: ``DIR/spark.toml`` for an existing directory or a path that
    ends with a separator (``newdir/``), else the path itself."""
    path = Path(path_text).expanduser()
    ends_as_dir = path_text.endswith("/") or path_text.endswith(os.sep)
    return path / CONFIG_FILE_NAME if ends_as_dir or path.is_dir() else path
