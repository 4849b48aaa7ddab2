"""``spark demo``: the cache at work, offline, against the bundled local provider server.

The same questions go twice to an OpenAI, a Bedrock and a Gemini model sharing one temporary
cache: the first round pays the (simulated) provider latency, the second is answered from disk.
On a base install (a provider SDK missing) the questions go to ``EchoModel`` instead, which
needs no SDK; the cache does the same work.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from spark.cli._output import echo_json, format_latency, format_usd, json_option, say
from spark.models.base import Model
from spark.models.echo import EchoModel
from spark.models.pricing import BUILTIN_PRICES
from spark.testing import ProviderServer

__all__ = ["QUESTIONS", "demo"]

QUESTIONS = (
    "What is the capital of France?",
    "Name the three primary colors.",
    "What is twelve times twelve?",
    "Who wrote Hamlet?",
    "What does HTTP stand for?",
    "How many days are in a leap year?",
    "What is the boiling point of water at sea level?",
    "Which planet is closest to the sun?",
    "What is the chemical symbol for gold?",
)
# One model of each provider, all with a built-in price so the dollars saved are real figures.
_MODELS = (
    ("openai", "gpt-4o-mini"),
    ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
    ("gemini", "gemini-2.0-flash"),
)
_SDKS = {"openai": "openai", "boto3": "boto3", "google.genai": "google-genai"}  # import: pip
# EchoModel stands in for all three on a base install, priced as the cheapest of them so that
# the dollars saved are a real figure for a real model.
_ECHO_PRICED_AS = "gpt-4o-mini"
_WORDS = 8


@dataclass(frozen=True)
class Answer:
    """One question asked of one model in one round."""

    round: int
    provider: str
    model_id: str
    question: str
    text: str
    latency_s: float
    cached: bool
    cost_usd: float | None


@click.command(short_help="See the cache at work, offline.")
@click.option(
    "--questions",
    "-n",
    "count",
    default=6,
    show_default=True,
    type=click.IntRange(1, len(QUESTIONS)),
    help="How many questions to ask (spread over the models asked).",
)
@click.option(
    "--latency",
    default=0.4,
    show_default=True,
    type=click.FloatRange(0, 5),
    help="Seconds each simulated provider call takes.",
)
@json_option
def demo(count: int, latency: float, as_json: bool) -> None:
    """See the cache at work, offline: questions asked twice of OpenAI, Bedrock and Gemini.

    Starts Spark's local stand-in for the three providers (spark.testing.ProviderServer), builds
    one model of each over a fresh temporary cache, asks each question once (every call reaches
    the provider) and then again (answered from the cache), and prints the second round's
    median latency, the hit rate and the dollars saved. No network, no API keys.

    Without the provider SDKs (a base install) the questions go to EchoModel, Spark's offline
    model, through the same cache.
    """
    questions = list(QUESTIONS[:count])
    show = None if as_json else _print_answer
    missing = missing_sdks()
    if show is not None:
        say(_intro(count, latency, missing))
    cache_dir = Path(tempfile.mkdtemp(prefix="spark-demo-"))
    try:
        with _models(cache_dir, latency, missing) as models:
            answers, stats = asyncio.run(_run(models, questions, show))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    summary = _summary(answers, stats)
    if as_json:
        backend = "echo" if missing else "provider_server"
        echo_json({**summary, "backend": backend, "answers": [asdict(a) for a in answers]})
        return
    say("")
    say(
        f"Second round median latency: {format_latency(summary['second_round_median_s'])} "
        f"(first round: {format_latency(summary['first_round_median_s'])})"
    )
    say(
        f"Hit rate: {100 * summary['hit_rate']:.1f}% "
        f"({summary['hits']} hits, {summary['misses']} misses)"
    )
    priced = f" (EchoModel priced as {_ECHO_PRICED_AS})" if missing else ""
    say(f"Dollars saved: {format_usd(summary['saved_usd'])}{priced}")


def missing_sdks() -> list[str]:
    """The provider SDKs that cannot be imported, by their pip names (imported now, so that the
    first round times the calls, not the imports)."""
    missing = []
    for module, package in _SDKS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    return missing


def _intro(count: int, latency: float, missing: list[str]) -> str:
    if not missing:
        return (
            f"Asking {count} questions twice, spread over OpenAI, Bedrock and Gemini (a local "
            f"stand-in; each provider call takes {latency:g} s)."
        )
    return (
        f"Asking {count} questions twice of EchoModel, Spark's offline model (each call takes "
        f"{latency:g} s). Not installed: {', '.join(missing)}; with the provider SDKs "
        "(pip install -e '.[all]' in a Spark checkout) the demo asks OpenAI, Bedrock and "
        "Gemini stand-ins instead."
    )


@contextmanager
def _models(cache_dir: Path, latency: float, missing: list[str]) -> Iterator[list[Model]]:
    """The demo's models: the three providers against a local server, or EchoModel."""
    if missing:
        yield [echo_model(cache_dir, latency)]
        return
    with ProviderServer(latency=latency) as server:
        yield build_models(server, cache_dir)


def echo_model(cache_dir: Path, latency: float) -> EchoModel:
    """The base install's demo model, caching in ``cache_dir``."""
    price = BUILTIN_PRICES[_ECHO_PRICED_AS]
    return EchoModel(latency=latency, enable_cache=True, cache_dir=cache_dir, pricing=price)


def build_models(server: ProviderServer, cache_dir: Path) -> list[Model]:
    """An OpenAI, a Bedrock and a Gemini model pointed at ``server``, caching in ``cache_dir``."""
    from spark.models.bedrock import BedrockModel  # the provider modules load their SDKs lazily
    from spark.models.gemini import GeminiModel
    from spark.models.openai import OpenAIModel

    cache: dict[str, Any] = {"enable_cache": True, "cache_dir": cache_dir, "max_retries": 0}
    (_, openai_id), (_, bedrock_id), (_, gemini_id) = _MODELS
    return [
        OpenAIModel(openai_id, base_url=server.openai_base_url, api_key="demo", **cache),
        BedrockModel(
            bedrock_id,
            endpoint_url=server.bedrock_endpoint_url,
            region="us-east-1",
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
            **cache,
        ),
        GeminiModel(gemini_id, base_url=server.gemini_base_url, api_key="demo", **cache),
    ]


async def _run(
    models: list[Model], questions: list[str], show: Callable[[Answer, bool], None] | None
) -> tuple[list[Answer], dict[str, Any]]:
    answers = []
    for round_number in (1, 2):
        for index, question in enumerate(questions):
            model = models[index % len(models)]
            answer = await _ask(model, round_number, question)
            answers.append(answer)
            if show is not None:
                show(answer, index == 0)
    manager = models[0].cache_manager
    stats = manager.get_stats()
    # The ledger would otherwise be flushed at exit, into a directory that is gone by then.
    manager.counters.ledger.flush()
    return answers, stats


async def _ask(model: Model, round_number: int, question: str) -> Answer:
    started = time.perf_counter()
    response = await model.generate(question, max_tokens=64)
    latency = time.perf_counter() - started
    return Answer(
        round_number,
        model.provider,
        model.model_id,
        question,
        response.text,
        latency,
        response.cached,
        response.cost_usd,
    )


def _print_answer(answer: Answer, first_of_round: bool) -> None:
    if first_of_round:
        say(_ROUND_TITLES[answer.round])
    words = " ".join(answer.text.split()[:_WORDS])
    state = "hit " if answer.cached else "miss"
    say(
        f"  {answer.provider:<8} {format_latency(answer.latency_s):>9}  {state}  "
        f"{answer.question}  -> {words} ..."
    )


_ROUND_TITLES = {1: "Round 1, cold cache:", 2: "Round 2, the same questions again:"}


def _summary(answers: list[Answer], stats: dict[str, Any]) -> dict[str, Any]:
    first = [a.latency_s for a in answers if a.round == 1]
    second = [a.latency_s for a in answers if a.round == 2]
    return {
        "questions": len(first),
        "first_round_median_s": statistics.median(first),
        "second_round_median_s": statistics.median(second),
        "hits": stats["hits"],
        "misses": stats["misses"],
        "hit_rate": stats["hit_rate"],
        "saved_usd": stats["saved_cost_usd"],
    }
