"""``spark ask``: one question to a model of spark.toml, through the active profile's cache."""

from __future__ import annotations

import asyncio
import sys
import time

import click

from spark.cli._context import CliState, alias_of, pass_state, profile_option
from spark.cli._output import echo_json, format_latency, format_usd, json_option, say
from spark.profiles import model_from_settings
from spark.types import ModelResponse

__all__ = ["ask", "describe_response"]


@click.command(short_help="Ask a configured model one question.")
@click.argument("prompt")
@click.option(
    "--model",
    required=True,
    metavar="MODEL",
    help="A model alias ([models.<ALIAS>]), or the model id of one.",
)
@profile_option
@click.option("--system", metavar="TEXT", help="A system prompt.")
@click.option("--no-cache", is_flag=True, help="Bypass the cache: no read, no write.")
@json_option
@pass_state
def ask(
    state: CliState,
    prompt: str,
    model: str,
    profile: str | None,
    system: str | None,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Ask a model of spark.toml one question, through the profile's cache.

    Prints the answer (a refusal as "(refused) ...", an answer with no text as what it holds,
    such as an image), then one line: whether it came from
    the cache, the latency, the tokens and the cost. PROMPT "-" reads the prompt from stdin.
    The provider's credentials come from its usual environment variables (OPENAI_API_KEY,
    AWS_*, GOOGLE_API_KEY) or the alias's api_key_env.
    """
    if prompt == "-":
        prompt = sys.stdin.read().strip()
    settings = state.settings(profile, enabled=False if no_cache else None)
    alias = alias_of(settings, model)
    chosen = settings.model(alias)
    state.rules = chosen.cache
    llm = model_from_settings(chosen, settings.pricing)
    started = time.perf_counter()
    response = asyncio.run(llm.generate(prompt, system_prompt=system))
    latency = time.perf_counter() - started
    if as_json:
        echo_json(
            {
                "alias": alias,
                "provider": llm.provider,
                "model_id": llm.model_id,
                "text": response.text,
                "cached": response.cached,
                "latency_s": round(latency, 6),
                "usage": response.usage.to_dict(),
                "cost_usd": 0.0 if response.cached else response.cost_usd,
                "saved_usd": response.cost_usd if response.cached else 0.0,
                "finish_reason": response.finish_reason,
                "refusal": response.refusal,
                "provider_output": response.provider_output,
            }
        )
        return
    say(answer_text(response))
    say(describe_response(response, latency), dim=True)


def answer_text(response: ModelResponse) -> str:
    """The answer to print: its text, "(refused) ...", or what an answer without text holds."""
    if response.refusal is not None:
        return f"(refused) {response.refusal}"
    if response.text or not isinstance(response.provider_output, list):
        return response.text
    kinds = [_kind(item) for item in response.provider_output]
    return f"(no text: the answer holds {', '.join(kinds)}; --json prints it whole)"


def _kind(item: object) -> str:
    """What one piece of ``provider_output`` is: its ``type``, else its one field's name."""
    if isinstance(item, dict):
        if isinstance(item.get("type"), str):
            return str(item["type"])
        return ", ".join(str(name) for name in item)
    return type(item).__name__


def describe_response(response: ModelResponse, latency: float) -> str:
    """``cached: yes · 1.2 ms · 12 in / 30 out tokens · cost $0.0000 (saved $0.0001)``."""
    usage = response.usage
    if response.cost_usd is None:
        cost = "cost unknown (no price for this model)"
    elif response.cached:
        cost = f"cost {format_usd(0.0)} (saved {format_usd(response.cost_usd)})"
    else:
        cost = f"cost {format_usd(response.cost_usd)}"
    return " · ".join(
        (
            f"cached: {'yes' if response.cached else 'no'}",
            format_latency(latency),
            f"{usage.input_tokens} in / {usage.output_tokens} out tokens",
            cost,
        )
    )
