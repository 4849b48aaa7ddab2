"""``EchoModel``: deterministic offline answers through Spark's real cache, with no provider SDK.

Also runs the offline examples of docs/models.md and README.md as a user would, in a process.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spark.cache import CacheConfig, generate_key
from spark.errors import ConfigError
from spark.models import model_class, registry
from spark.models.echo import EchoModel, echo_vector
from spark.types import Price

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "What is the capital of France?"

# Makes the provider SDKs impossible to import, as on a base install.
BLOCK_SDKS = """
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("openai", "boto3", "botocore") or name.startswith("google.genai"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
sys.meta_path.insert(0, _Blocked())
"""


@pytest.fixture
def model(cache_config: CacheConfig) -> EchoModel:
    return EchoModel(cache_config=cache_config)


# -- answers ----------------------------------------------------------------------------------


async def test_the_answer_repeats_the_last_user_message_and_the_second_call_is_a_hit(
    model: EchoModel,
) -> None:
    first = await model.generate(
        [{"role": "user", "content": "Hi"}, {"role": "user", "content": QUESTION}]
    )
    again = await model.generate(
        [{"role": "user", "content": "Hi"}, {"role": "user", "content": QUESTION}]
    )

    assert first.text == again.text == f"Echo: {QUESTION}"
    assert (first.cached, again.cached) == (False, True)
    assert (first.provider, first.model_id, first.cost_usd) == ("echo", "echo", 0.0)
    assert first.usage.output_tokens == 7  # words of the answer
    stats = model.cache_manager.get_stats()
    assert stats["entries_by_provider"] == {"echo": 1}
    assert (stats["hits"], stats["misses"]) == (1, 1)


async def test_get_text_leaves_its_entry_on_disk_under_the_echo_folder(
    model: EchoModel, cache_config: CacheConfig
) -> None:
    await model.get_text(QUESTION)

    assert model.cache_manager.has_entry(model.cache_key(QUESTION))
    [entry] = (cache_config.resolved_dir / "echo" / "echo").glob("*.json")
    assert entry.stem == model.cache_key(QUESTION)


async def test_stop_max_tokens_and_n_shape_the_answer(model: EchoModel) -> None:
    stopped = await model.generate("one two three four", stop=["three"])
    cut = await model.generate("one two three four", max_tokens=3)
    several = await model.generate("one", n=3)

    assert (stopped.text, stopped.finish_reason) == ("Echo: one two ", "stop")
    assert (cut.text, cut.finish_reason) == ("Echo: one two", "length")
    assert [c.text for c in several.choices] == ["Echo: one"] * 3


@pytest.mark.parametrize(
    ("choice", "called"),
    [
        ("required", "lookup"),
        ("any", "lookup"),
        ("weather", "weather"),
        ({"type": "function", "function": {"name": "weather"}}, "weather"),
    ],
)
async def test_a_forced_tool_is_called(model: EchoModel, choice: object, called: str) -> None:
    tools = [
        {"name": "lookup", "parameters": {"type": "object"}},
        {"type": "function", "function": {"name": "weather", "parameters": {}}},
    ]
    response = await model.generate("Weather?", tools=tools, tool_choice=choice)

    assert [(c.name, dict(c.arguments)) for c in response.tool_calls] == [(called, {})]
    assert (response.text, response.finish_reason) == ("", "tool_calls")


async def test_tools_without_a_forcing_choice_get_text(model: EchoModel) -> None:
    response = await model.generate("Weather?", tools=[{"name": "w"}], tool_choice="auto")

    assert (response.text, response.tool_calls) == ("Echo: Weather?", ())


async def test_a_stream_yields_the_answer_word_by_word_and_replays_it(model: EchoModel) -> None:
    live = [chunk async for chunk in model.stream_text(QUESTION)]
    replayed = [chunk async for chunk in model.stream_text(QUESTION)]
    plain = await model.generate(QUESTION)

    assert live == ["Echo: ", "What ", "is ", "the ", "capital ", "of ", "France?"]
    assert replayed == live
    assert plain.cached  # a plain call and a streamed call of one request share an entry
    assert model.cache_manager.get_stats()["misses"] == 1


async def test_embeddings_are_unit_vectors_of_the_text_and_cached(model: EchoModel) -> None:
    first = await model.embed(["alpha", "beta"], dimensions=16)
    again = await model.embed(["alpha", "beta"], dimensions=16)

    assert (
        first.embeddings == again.embeddings == [echo_vector("alpha", 16), echo_vector("beta", 16)]
    )
    assert [len(v) for v in first.embeddings] == [16, 16]
    assert math.isclose(sum(x * x for x in first.embeddings[0]), 1.0, abs_tol=1e-4)
    assert first.embeddings[0] != first.embeddings[1]
    assert (first.cached, again.cached) == (False, True)
    assert len((await model.embed("alpha")).embeddings[0]) == 8


async def test_latency_is_paid_by_misses_only(cache_config: CacheConfig) -> None:
    import time

    model = EchoModel(latency=0.2, cache_config=cache_config)
    started = time.perf_counter()
    await model.get_text(QUESTION)
    miss = time.perf_counter() - started
    started = time.perf_counter()
    await model.get_text(QUESTION)
    hit = time.perf_counter() - started

    assert miss >= 0.2 > hit


# -- keys -------------------------------------------------------------------------------------


def test_the_common_message_spellings_share_one_key(model: EchoModel) -> None:
    spellings = [
        ("Hi", {"system_prompt": "Be brief."}),
        ([{"role": "user", "content": "Hi"}], {"system_prompt": "Be brief."}),
        ([{"role": "user", "content": [{"text": "Hi"}]}], {"system_prompt": "Be brief."}),
        (
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            ],
            {},
        ),
        ("Hi", {"system_prompt": "Be brief.", "timeout": 5, "headers": {"x-trace": "1"}}),
        ("Hi", {"system_prompt": "Be brief.", "temperature": None}),
    ]
    keys = {model.cache_key(messages, **params) for messages, params in spellings}

    assert len(keys) == 1


def test_anything_that_can_change_the_answer_changes_the_key(model: EchoModel) -> None:
    base = model.cache_key("Hi")
    variants = [
        model.cache_key("Ho"),
        model.cache_key("Hi", system_prompt="X"),
        model.cache_key("Hi", temperature=0.5),
        model.cache_key("Hi", max_tokens=3),
        model.cache_key("Hi", response_format={"type": "json_object"}),
        EchoModel("other").cache_key("Hi"),
    ]

    assert len({base, *variants}) == len(variants) + 1


def test_the_registry_prepares_the_call_the_model_makes(model: EchoModel) -> None:
    assert model_class("echo") is EchoModel
    assert registry.cache_model_id("echo", "echo-2") == "echo-2"
    by_registry = registry.prepare_chat("echo", "echo", "Hi", {"system_prompt": "S"})
    assert by_registry == model._prepare_chat("Hi", {"system_prompt": "S"})
    embedding = registry.prepare_embedding("echo", "echo", ["a"], {})
    assert embedding.body == {"input": ["a"]}


async def test_an_encrypted_cache_seals_echo_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "sealed", encrypt=True)
    model = EchoModel(cache_config=config)

    assert not (await model.generate(QUESTION)).cached
    assert (await model.generate(QUESTION)).cached
    [entry] = (tmp_path / "sealed" / "echo").rglob("*.json")
    assert "France" not in entry.read_text()


def test_a_mapping_of_prices_keeps_the_echo_model_free() -> None:
    priced = EchoModel(pricing=Price(1.0, 2.0))
    other = EchoModel(pricing={"gpt-4o": Price(2.5, 10.0)})

    assert priced.prices.price("echo") == Price(1.0, 2.0)
    assert other.prices.price("echo") == Price(0.0, 0.0)


# -- mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "params", "said"),
    [
        ("Hi", {"max_tokens": 0}, "max_tokens must be a whole number >= 1, got 0"),
        ("Hi", {"n": "2"}, "n must be a whole number >= 1, got '2'"),
        ("Hi", {"stop": [1]}, "stop must be a string or a list of strings"),
        (42, {}, "messages must be a string or a list of messages, got int"),
        (["Hi"], {}, "a message must be a mapping with a role and content, got str"),
    ],
)
async def test_bad_calls_are_config_errors_that_say_what_was_wrong(
    model: EchoModel, messages: object, params: dict[str, object], said: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(said)):
        await model.get_text(messages, **params)  # type: ignore[arg-type]
    assert model.cache_manager.get_stats()["total_entries"] == 0


async def test_bad_embedding_calls_and_latency_are_refused(model: EchoModel) -> None:
    with pytest.raises(ConfigError, match=r"dimensions must be a whole number >= 1, got 0"):
        await model.embed("a", dimensions=0)
    with pytest.raises(ConfigError, match="EchoModel embeds strings, got int"):
        await model.embed([1])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"latency must be a number of seconds >= 0, got -1"):
        EchoModel(latency=-1)


# -- as a user runs it ------------------------------------------------------------------------


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_echo_model_works_with_no_provider_sdk_importable(tmp_path: Path) -> None:
    code = (
        BLOCK_SDKS
        + """
import asyncio
from spark.models.echo import EchoModel

async def main():
    model = EchoModel(enable_cache=True, cache_dir="cache")
    print(await model.get_text("Hi"))
    print("".join([c async for c in model.stream_text("Hi")]))
    print((await model.generate("Hi")).cached, len((await model.embed("Hi")).embeddings[0]))

asyncio.run(main())
print(sorted(m for m in sys.modules if m.split(".")[0] in ("openai", "boto3", "botocore")))
"""
    )
    done = run_python(code, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Echo: Hi", "Echo: Hi", "True 8", "[]"]
    assert done.stderr == ""


def _python_blocks(markdown: Path, after: str) -> list[str]:
    text = markdown.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text[text.index(after) :], re.S)


def test_the_echo_examples_of_the_docs_run_as_printed(tmp_path: Path) -> None:
    readme = _python_blocks(ROOT / "README.md", "No provider at hand?")[0]
    models_md = _python_blocks(ROOT / "docs" / "models.md", "## EchoModel")[0]

    for code in (readme, models_md):
        done = run_python(code, tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"Echo: {QUESTION}\n")
    assert done.stdout.splitlines()[1] == "True 0.0"


def test_the_provider_server_example_of_docs_models_shows_the_injected_429(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    code = _python_blocks(ROOT / "docs" / "models.md", "## Offline: `spark.testing`")[0]

    done = run_python(code, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["{'city': 'Lisbon'}", "429: 429", "2"]


def test_why_the_example_turns_retries_off(tmp_path: Path) -> None:
    """With the SDK's own retries, the injected 429 is retried away: the call succeeds."""
    pytest.importorskip("openai")
    code = _python_blocks(ROOT / "docs" / "models.md", "## Offline: `spark.testing`")[0]
    with_retries = code.replace("max_retries=0,", "max_retries=2,")
    assert with_retries != code

    done = run_python(with_retries, tmp_path)

    assert done.returncode == 0, done.stderr
    assert "429: 429" not in done.stdout
    assert done.stdout.splitlines()[-1] == "3"  # the failed try and its retry both reached it


def test_spark_toml_names_the_echo_provider(tmp_path: Path) -> None:
    (tmp_path / "spark.toml").write_text(
        '[cache]\nenabled = true\ndir = "cache"\n\n[models.fake]\nprovider = "echo"\n'
        'model_id = "echo"\n',
        encoding="utf-8",
    )
    code = (
        "import asyncio, spark.models\n"
        "model = spark.models.from_profile('fake')\n"
        "print(type(model).__name__, asyncio.run(model.get_text('Hi')))\n"
    )

    done = run_python(code, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == "EchoModel Echo: Hi\n"
    assert list((tmp_path / "cache" / "echo" / "echo").glob("*.json"))
