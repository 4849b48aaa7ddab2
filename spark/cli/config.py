"""``spark config``: check spark.toml, show where each setting comes from, write a starter file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import click

from spark.cli._context import CliState, pass_state, profile_option
from spark.cli._errors import CliError
from spark.cli._output import echo_json, json_option, print_table, warn
from spark.config import CONFIG_FILE_NAME, Settings, render_default_toml
from spark.config.problems import problem_message
from spark.errors import ConfigError

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
    "--strict", is_flag=True, help="Treat warnings (e.g. an encryption key not present) as errors."
)
@json_option
@pass_state
def validate(
    state: CliState, profile: str | None, all_profiles: bool, strict: bool, as_json: bool
) -> None:
    """Check spark.toml and the environment for the active profile.

    Prints `OK: <file> (profile P, N models)`, or every problem, one per line, and exits 1.
    Warnings (an encrypted cache whose key is not present here) are printed; --strict makes
    them errors. Suitable for CI and pre-commit hooks.
    """
    try:
        active = state.settings(profile)
    except ConfigError as exc:
        _fail(as_json, None, exc.problems or [str(exc)])
    if active.path is None:
        raise CliError(
            f"no {CONFIG_FILE_NAME} found in {Path.cwd()} or its parents",
            "Create one with `spark config init`, or name it with --config or SPARK_CONFIG.",
        )
    names = active.profiles if all_profiles and active.profiles else [active.profile]
    checked, problems = _check_profiles(state, active, names, strict)
    if problems:
        _fail(as_json, active.path, problems)
    if as_json:
        echo_json({"ok": True, "file": active.path, "profiles": checked, "problems": []})
        return
    for report in checked:
        for line in report["warnings"]:
            warn(f"profile {report['profile']}: {line}" if all_profiles else line)
        count = len(report["models"])
        noun = "model" if count == 1 else "models"
        click.echo(f"OK: {active.path} (profile {report['profile']}, {count} {noun})")


def _check_profiles(
    state: CliState, active: Settings, names: list[str], strict: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """A report per profile that loads cleanly, and every problem of those that do not."""
    checked: list[dict[str, Any]] = []
    problems: list[str] = []
    for name in names:
        try:
            settings = active if name == active.profile else state.settings(name)
            warnings = settings.validate(strict_keys=strict)
        except ConfigError as exc:
            problems += exc.problems or [str(exc)]
            continue
        checked.append({"profile": name, "models": settings.model_aliases, "warnings": warnings})
    return checked, list(dict.fromkeys(problems))


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
    click.echo(f"{where}, profile {settings.profile}, {target}")
    print_table(
        ["Setting", "Value", "Source"],
        [(v["name"], _show(v["value"]), v["source"]) for v in values],
    )
    if alias is None and settings.model_aliases:
        aliases = ", ".join(settings.model_aliases)
        click.echo(f"models: {aliases} (see one with --model ALIAS)")


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
    type=click.Path(path_type=Path),
    default=Path(CONFIG_FILE_NAME),
    show_default=True,
    help="Where to write it (a directory gets a spark.toml inside).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> None:
    """Write a starter spark.toml: a cache-off base and the four usual profiles.

    development (cache on, 1 day), testing (30 days, encrypted, replay-only, under
    tests/llm_cache), staging (1 hour) and production (off, but embeddings cached for a week).
    An existing file is never overwritten without --force.
    """
    target = path / CONFIG_FILE_NAME if path.is_dir() else path
    if target.exists() and not force:
        raise CliError(f"{target} already exists", "Use --force to overwrite it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_STARTER_HEADER + render_default_toml(), encoding="utf-8")
    click.echo(f"Wrote {target}. Check it with `spark config validate`.")
