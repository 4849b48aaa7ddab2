"""``spark cache explain`` and ``spark cache prune``: the record/replay side of a cache."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from spark.cache import admin
from spark.cache.codec import CorruptEntryError, EntryMeta
from spark.cache.explain import miss_explanation
from spark.cli._context import (
    CliState,
    alias_of,
    cache_target,
    dir_option,
    pass_state,
    profile_option,
)
from spark.cli._errors import CliError
from spark.cli._output import echo_json, format_time, json_option, readable_json, say, warn
from spark.errors import ConfigError

if TYPE_CHECKING:
    from spark.cache.bound import BoundCache, CacheRequest

__all__ = ["explain", "prune"]


@click.command(short_help="Say whether a request is cached, and if not, what differs.")
@click.argument("request_json", metavar="REQUEST")
@click.option(
    "--model",
    metavar="MODEL",
    help="Take provider and model from this alias of spark.toml (or the alias of this model id).",
)
@click.option(
    "--show-values",
    is_flag=True,
    help="Show the text of encrypted entries (digests otherwise): for a local terminal only.",
)
@profile_option
@dir_option
@json_option
@pass_state
def explain(
    state: CliState,
    request_json: str,
    model: str | None,
    show_values: bool,
    profile: str | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Look a request up as replay mode would, and explain a miss.

    REQUEST is JSON (inline, @FILE, or - for stdin) with the arguments of get_text:
    "messages" (or "prompt"), and optionally "system_prompt", "tools", "tool_choice",
    "temperature", "max_tokens" and other parameters, plus "provider" and "model_id" unless
    --model names an alias (or the model id of one):

    \b
        spark cache explain --model gpt-4o '{"messages": "Hi", "temperature": 0.7}'

    On a hit, prints the entry's metadata (path, key, times, encryption); on a miss, the
    nearest stored request of the same model and the fields that differ. Exits 1 on a miss.
    What an encrypted cache holds stays sealed, as in CI logs: the fields that differ are
    named, their text shown as sha256 digests (sampling numbers such as temperature as
    values). --show-values shows the text, and the stored answer of a hit: use it on your own
    terminal, never in CI.
    """
    settings = state.settings(profile)
    alias = None if model is None else alias_of(settings, model)
    target = cache_target(state, profile, cache_dir, alias, settings=settings)
    arguments = _read_request(request_json)
    if alias is not None:
        aliased = target.settings.model(alias)
        arguments.setdefault("provider", aliased.provider)
        arguments.setdefault("model_id", aliased.model_id)
    provider, model_id = _identity(arguments)
    messages = arguments.pop("messages", arguments.pop("prompt", None))
    if messages is None:
        raise CliError("the request has no messages", 'Give "messages" (or "prompt") in REQUEST.')
    bound = target.manager.bind(target.config.with_overrides(enabled=True))
    try:
        request = bound.chat_request(provider, model_id, messages, **arguments)
    except ConfigError as exc:  # a problem of REQUEST, not of spark.toml
        raise CliError(
            f"the request: {exc}", "Fix REQUEST: its keys are the arguments of get_text."
        ) from exc
    path = bound.manager.store.location(provider, model_id, request.key)
    response = bound.lookup(request)
    if response is not None:
        _explain_hit(bound, request, path, response, show_values, as_json)
        return
    explanation = miss_explanation(bound, request, show_values=show_values)
    nearest = explanation.nearest
    if show_values and nearest is not None and nearest.sealed:
        _warn_values_shown()
    if as_json:
        echo_json(
            {
                "key": request.key,
                "hit": False,
                "path": path,
                "explanation": explanation.message(),
                "nearest": None if nearest is None else asdict(nearest),
                "values_shown": show_values,
            }
        )
    else:
        say(explanation.message())
    sys.exit(1)


def _explain_hit(
    bound: BoundCache,
    request: CacheRequest,
    path: str,
    response: dict[str, Any],
    show_values: bool,
    as_json: bool,
) -> None:
    """A hit: the entry's metadata; its stored answer only with --show-values."""
    try:
        meta: EntryMeta | None = admin.entry_content(bound.manager.store, path, bound.keyring).meta
    except (OSError, CorruptEntryError):  # (deleted or damaged since the lookup)
        meta = None
    if show_values and ((meta is not None and meta.sealed) or bound.config.encrypt):
        _warn_values_shown()
    if as_json:
        echo_json(
            {
                "key": request.key,
                "hit": True,
                "path": path,
                "explanation": None,
                "entry": None if meta is None else meta._asdict(),
                "response": response if show_values else None,
                "values_shown": show_values,
            }
        )
        return
    say(f"HIT: {path}")
    if meta is not None:
        for label, value in (
            ("key", meta.key),
            ("created", format_time(meta.created_at)),
            ("expires", format_time(meta.expires_at)),
            ("encryption", meta.encryption),
            ("fingerprint", meta.key_fingerprint or "-"),
        ):
            say(f"{label:<12}{value}")
    if show_values:
        say("\nresponse:")
        say(readable_json(response))
    else:
        say(f"{'response':<12}not shown (--show-values prints it)")


def _warn_values_shown() -> None:
    """Text of a sealed entry is about to go somewhere other than a terminal (a log, a file)."""
    if not sys.stdout.isatty():
        warn(
            "--show-values prints the text of encrypted cache entries; keep this output out of "
            "CI logs and anything shared"
        )


def _read_request(raw: str) -> dict[str, Any]:
    if raw == "-":
        raw = sys.stdin.read()
    elif raw.startswith("@"):
        raw = Path(raw[1:]).read_text(encoding="utf-8")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise CliError(f"REQUEST is not JSON: {exc}", "Quote it, or pass @file.json.") from exc
    if not isinstance(value, dict):
        raise CliError("REQUEST must be a JSON object", 'e.g. {"messages": "Hi"}')
    return value


def _identity(arguments: dict[str, Any]) -> tuple[str, str]:
    provider, model_id = arguments.pop("provider", None), arguments.pop("model_id", None)
    if not provider or not model_id:
        raise CliError(
            "the request names no provider and model",
            'Add "provider" and "model_id" to REQUEST, or use --model ALIAS.',
        )
    return str(provider), str(model_id)


@click.command(short_help="Delete entries the last recorded run did not use.")
@click.option("--unused", is_flag=True, required=True, help="Delete the unused entries.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@profile_option
@dir_option
@json_option
@pass_state
def prune(
    state: CliState,
    unused: bool,
    yes: bool,
    profile: str | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Delete the entries that the last recording run did not use.

    A run with `pytest --spark-cache=record` (or refresh) notes which entries it read or
    wrote; everything else is a question no test asks any more. Pruning keeps a committed
    cache from growing forever. An entry recorded after that run finished (a teammate's, pulled
    since: the record is per machine) is kept. A run of part of the suite (-k, -m, named paths)
    adds to the record; prune refuses when no run of the whole suite has been recorded. Asks
    first unless --yes (also with --json).
    """
    target = cache_target(state, profile, cache_dir)
    if not yes:  # (--json too: a script says --yes; the question goes to stderr)
        click.confirm(
            f"Delete the entries of {target.where} the last run did not use?", abort=True, err=True
        )
    removed = target.manager.prune_unused()
    if as_json:
        echo_json({"cache_dir": target.cache_dir, "removed": removed})
    else:
        say(f"Removed {removed} unused entries from {target.where}.")
