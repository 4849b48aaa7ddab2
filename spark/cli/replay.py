"""``spark cache explain`` and ``spark cache prune``: the record/replay side of a cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from spark.cache.explain import explain_miss
from spark.cli._context import CliState, cache_target, dir_option, pass_state, profile_option
from spark.cli._errors import CliError
from spark.cli._output import echo_json, json_option

__all__ = ["explain", "prune"]


@click.command(short_help="Say whether a request is cached, and if not, what differs.")
@click.argument("request_json", metavar="REQUEST")
@click.option("--model", "alias", metavar="ALIAS", help="Take provider and model from this alias.")
@profile_option
@dir_option
@json_option
@pass_state
def explain(
    state: CliState,
    request_json: str,
    alias: str | None,
    profile: str | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Look a request up as replay mode would, and explain a miss.

    REQUEST is JSON (inline, @FILE, or - for stdin) with the arguments of get_text:
    "messages" (or "prompt"), and optionally "system_prompt", "tools", "tool_choice",
    "temperature", "max_tokens" and other parameters, plus "provider" and "model_id" unless
    --model names an alias:

    \b
        spark cache explain --model gpt-4o '{"messages": "Hi", "temperature": 0.7}'

    Prints the stored entry on a hit; on a miss, the nearest stored request of the same model
    and the fields that differ. Exits 1 on a miss.
    """
    target = cache_target(state, profile, cache_dir, alias)
    arguments = _read_request(request_json)
    if alias is not None:
        model = target.settings.model(alias)
        arguments.setdefault("provider", model.provider)
        arguments.setdefault("model_id", model.model_id)
    provider, model_id = _identity(arguments)
    messages = arguments.pop("messages", arguments.pop("prompt", None))
    if messages is None:
        raise CliError("the request has no messages", 'Give "messages" (or "prompt") in REQUEST.')
    bound = target.manager.bind(target.config.with_overrides(enabled=True))
    request = bound.chat_request(provider, model_id, messages, **arguments)
    path = bound.manager.store.entry_path(provider, model_id, request.key)
    found = bound.lookup(request) is not None
    if as_json:
        message = None if found else str(explain_miss(bound, request))
        echo_json({"key": request.key, "hit": found, "path": path, "explanation": message})
    elif found:
        click.echo(f"HIT: {path}")
    else:
        click.echo(str(explain_miss(bound, request)))
    if not found:
        sys.exit(1)


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
    cache from growing forever. Refuses when no run has been recorded.
    """
    target = cache_target(state, profile, cache_dir)
    if not yes and not as_json:
        click.confirm(f"Delete the entries of {target.where} the last run did not use?", abort=True)
    removed = target.manager.prune_unused()
    if as_json:
        echo_json({"cache_dir": target.cache_dir, "removed": removed})
    else:
        click.echo(f"Removed {removed} unused entries from {target.where}.")
