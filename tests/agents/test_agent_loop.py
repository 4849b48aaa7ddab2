"""The agent loop against the local server: tool kinds, failures, names, memory, max_steps."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from spark.agents import Agent, AgentConfig, tool
from spark.errors import ProviderError
from spark.models.base import Model
from spark.testing import ProviderServer

MakeModel = Callable[..., Model]
ToolResultOf = Callable[[str, dict[str, Any]], str]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


def forecast(city: str) -> str:
    """The weather forecast of a city."""
    raise ValueError(f"no such city: {city}")


def body_text(server: ProviderServer) -> str:
    """Every request body the server received, as one JSON text."""
    return "\n".join(json.dumps(r.body) for r in server.requests)


# -- sync, async and failing tools ------------------------------------------------------------


async def test_sync_tool_runs_in_a_worker_thread(
    make_model: MakeModel, server: ProviderServer
) -> None:
    threads: list[threading.Thread] = []

    def where(label: str) -> str:
        """Name the thread the tool runs in."""
        threads.append(threading.current_thread())
        return f"{label} ran"

    server.queue_tool_call("where", {"label": "sync"})
    answer = await Agent(AgentConfig(model=make_model(), tools=[where])).run("Go")

    assert "sync ran" in answer
    assert threads
    assert threads[0] is not threading.main_thread()


async def test_async_tool_is_awaited(make_model: MakeModel, server: ProviderServer) -> None:
    async def fetch(url: str) -> str:
        """Fetch a page (pretend)."""
        await asyncio.sleep(0)
        return f"<contents of {url}>"

    server.queue_tool_call("fetch", {"url": "https://example.test/a"})
    answer = await Agent(AgentConfig(model=make_model(), tools=[fetch])).run("Read it")

    assert "<contents of https://example.test/a>" in answer


async def test_decorated_tool_uses_its_new_name(
    make_model: MakeModel, server: ProviderServer
) -> None:
    @tool(name="sum_numbers", description="Sum two numbers.")
    def adder(a: int, b: int) -> int:
        return a + b

    server.queue_tool_call("sum_numbers", {"a": 1, "b": 2})
    result = await Agent(AgentConfig(model=make_model(), tools=[adder])).run_detailed("1+2?")

    assert result.tool_results[0].content == "3"
    offered = server.requests[0].body["tools"][0]["function"]
    assert offered["name"] == "sum_numbers"
    assert offered["description"] == "Sum two numbers."


@pytest.mark.parametrize("provider", ["openai", "bedrock", "gemini"])
async def test_a_tool_that_raises_sends_the_error_to_the_model(
    provider: str, make_model: MakeModel, server: ProviderServer, tool_result_of: ToolResultOf
) -> None:
    server.queue_tool_call("forecast", {"city": "Atlantis"}, provider=provider)
    agent = Agent(AgentConfig(model=make_model(provider), tools=[forecast, divide]))

    result = await agent.run_detailed("Weather in Atlantis?")

    assert result.stop_reason == "answer"
    sent = tool_result_of(provider, server.requests[-1].body)
    assert sent == "error: ValueError: no such city: Atlantis"
    assert result.tool_results[0].is_error
    assert result.tool_results[0].content == sent


async def shared_fetch(city: str) -> str:
    """Weather from a background fetch that other code cancelled."""
    fetch = asyncio.get_running_loop().create_future()
    fetch.cancel()
    return str(await fetch)


async def test_a_tool_whose_own_await_was_cancelled_reports_it_and_the_run_goes_on(
    make_model: MakeModel, server: ProviderServer, tool_result_of: ToolResultOf
) -> None:
    server.queue_tool_call("shared_fetch", {"city": "Oslo"})
    agent = Agent(AgentConfig(model=make_model(), tools=[shared_fetch]))

    result = await asyncio.create_task(agent.run_detailed("Weather in Oslo?"))

    assert result.stop_reason == "answer"
    assert result.tool_results[0].is_error
    assert tool_result_of("openai", server.requests[-1].body).startswith("error: CancelledError")


async def test_cancelling_a_run_in_a_tool_still_cancels_it(
    make_model: MakeModel, server: ProviderServer
) -> None:
    started = asyncio.Event()

    async def slow(city: str) -> str:
        """Weather, slowly."""
        started.set()
        await asyncio.sleep(30)
        return "sunny"

    server.queue_tool_call("slow", {"city": "Oslo"})
    run = asyncio.create_task(Agent(AgentConfig(model=make_model(), tools=[slow])).run("Hm?"))
    await asyncio.wait_for(started.wait(), 10)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert server.count() == 1, "no second model call after the cancel"


async def test_unknown_tool_name_is_reported_to_the_model(
    make_model: MakeModel, server: ProviderServer, tool_result_of: ToolResultOf
) -> None:
    server.queue_tool_call("nope", {})
    result = await Agent(AgentConfig(model=make_model(), tools=[add])).run_detailed("Hm?")

    sent = tool_result_of("openai", server.requests[-1].body)
    assert sent == "error: unknown tool 'nope' (tools: add)"
    assert result.tool_results[0].is_error
    assert server.count() == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"a": "two", "b": 2}, "a must be of type integer, got string 'two'"),
        ({"a": 1}, "missing required argument(s) b"),
        ({"a": 1, "b": 2, "c": 3}, "unexpected argument(s) c (takes a, b)"),
        ({"a": True, "b": 2}, "a must be of type integer, got boolean True"),
    ],
)
async def test_bad_arguments_are_reported_to_the_model(
    make_model: MakeModel,
    server: ProviderServer,
    tool_result_of: ToolResultOf,
    arguments: dict[str, Any],
    message: str,
) -> None:
    ran: list[Any] = []

    def strict_add(a: int, b: int) -> int:
        """Add two integers."""
        ran.append((a, b))
        return a + b

    server.queue_tool_call("strict_add", arguments)
    result = await Agent(AgentConfig(model=make_model(), tools=[strict_add])).run_detailed("?")

    assert ran == []
    assert tool_result_of("openai", server.requests[-1].body) == (
        f"error: invalid arguments for strict_add: {message}"
    )
    assert result.stop_reason == "answer"


async def test_integral_floats_are_accepted_for_integers(
    make_model: MakeModel, server: ProviderServer
) -> None:
    server.queue_tool_call("add", {"a": 2.0, "b": 3})
    result = await Agent(AgentConfig(model=make_model(), tools=[add])).run_detailed("2+3")

    assert result.tool_results[0].content == "5"


# -- what is sent --------------------------------------------------------------------------


async def test_agents_with_different_names_share_the_cache_and_never_send_the_name(
    make_model: MakeModel, server: ProviderServer
) -> None:
    server.queue_tool_call("add", {"a": 20, "b": 22})
    first = Agent(AgentConfig(model=make_model(), name="Navigator-QX17", tools=[add]))
    second = Agent(AgentConfig(model=make_model(), name="Librarian-ZP42", tools=[add]))

    answer = await first.run("What is 20 + 22?")
    requests_after_first = server.count()
    again = await second.run("What is 20 + 22?")

    assert again == answer
    assert requests_after_first == 2
    assert server.count() == 2  # the second agent made no request
    assert second.get_cost_stats().cache_hits == 2
    sent = body_text(server)
    assert "Navigator-QX17" not in sent
    assert "Librarian-ZP42" not in sent


async def test_system_prompt_is_sent_only_when_configured(
    make_model: MakeModel, server: ProviderServer
) -> None:
    await Agent(AgentConfig(model=make_model())).run("Hello")
    await Agent(AgentConfig(model=make_model(), system_prompt="Answer in French.")).run("Hello")

    plain, prompted = (r.body["messages"] for r in server.requests)
    assert [m["role"] for m in plain] == ["user"]
    assert prompted[0] == {"role": "system", "content": "Answer in French."}
    assert "tools" not in server.requests[0].body  # no tools configured, none offered


async def test_params_reach_the_model(make_model: MakeModel, server: ProviderServer) -> None:
    config = AgentConfig(model=make_model(), params={"temperature": 0.2, "max_tokens": 64})
    await Agent(config).run("Hello")

    body = server.requests[0].body
    assert body["temperature"] == 0.2
    assert 64 in (body.get("max_tokens"), body.get("max_completion_tokens"))


# -- memory ----------------------------------------------------------------------------------


async def test_conversation_is_remembered_across_runs_and_reset_forgets_it(
    make_model: MakeModel, server: ProviderServer
) -> None:
    server.queue_tool_call("add", {"a": 1, "b": 1})
    agent = Agent(AgentConfig(model=make_model(), tools=[add]))

    first = await agent.run("What is 1 + 1?")
    await agent.run("And doubled?")

    sent = server.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[0]["content"] == "What is 1 + 1?"
    assert sent[1]["tool_calls"][0]["function"]["name"] == "add"
    assert sent[2]["content"] == "2"
    assert sent[3]["content"] == first
    assert sent[4]["content"] == "And doubled?"
    assert [m["role"] for m in agent.messages] == [*[m["role"] for m in sent], "assistant"]

    agent.reset()
    await agent.run("Fresh start")

    assert agent.messages[0] == {"role": "user", "content": "Fresh start"}
    assert [m["role"] for m in server.requests[-1].body["messages"]] == ["user"]


async def test_a_failed_run_leaves_the_memory_as_it_was(
    make_model: MakeModel, server: ProviderServer
) -> None:
    agent = Agent(AgentConfig(model=make_model()))
    await agent.run("First question")
    before = agent.messages

    server.fail_next(500)
    with pytest.raises(ProviderError):
        await agent.run("Second question")

    assert agent.messages == before


async def test_one_agent_refuses_concurrent_runs(
    make_model: MakeModel, server: ProviderServer
) -> None:
    server.latency = 0.2
    agent = Agent(AgentConfig(model=make_model()))
    first = asyncio.create_task(agent.run("Slow one"))
    await asyncio.sleep(0.05)

    with pytest.raises(RuntimeError, match="already running"):
        await agent.run("Another")
    assert (await first).startswith("Answer")


# -- max_steps -------------------------------------------------------------------------------


async def test_max_steps_stops_the_run_without_running_the_last_calls(
    make_model: MakeModel, server: ProviderServer
) -> None:
    ran: list[int] = []

    def step(n: int) -> str:
        """Take one step."""
        ran.append(n)
        return f"step {n} done"

    for n in (1, 2, 3):
        server.queue_tool_call("step", {"n": n})
    agent = Agent(AgentConfig(model=make_model(), tools=[step], max_steps=2))

    result = await agent.run_detailed("Walk")

    assert result.stop_reason == "max_steps"
    assert result.stopped_by_max_steps
    assert server.count() == 2
    assert ran == [1]  # the second call was never run: no model call would read its result
    last = result.steps[-1].tool_results[0]
    assert last.is_error
    assert last.content == "error: not run: the agent stopped after max_steps=2"
    assert result.text == ""  # the model only ever asked for tools (no text to return)
    assert len(result.steps) == 2

    # The remembered conversation stays valid: every call has a result, the next run works.
    server.reset()
    answer = await agent.run("Stop walking")
    sent = server.requests[0].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "tool", "user"]
    assert answer.startswith("Answer")


async def test_max_steps_of_one_still_answers_a_question_without_tools(
    make_model: MakeModel, server: ProviderServer
) -> None:
    result = await Agent(AgentConfig(model=make_model(), max_steps=1)).run_detailed("Hi")

    assert result.stop_reason == "answer"
    assert result.text.startswith("Answer")


def test_config_is_validated(make_model: MakeModel) -> None:
    model = make_model()
    with pytest.raises(ValueError, match="max_steps"):
        AgentConfig(model=model, max_steps=0)
    with pytest.raises(ValueError, match="share the name"):
        AgentConfig(model=model, tools=[add, tool(name="add")(divide)])
    with pytest.raises(ValueError, match="params may not set tools"):
        AgentConfig(model=model, params={"tools": []})
    with pytest.raises(TypeError, match="a tool must be a function"):
        AgentConfig(model=model, tools=["add"])  # type: ignore[list-item]


async def test_editing_agent_messages_changes_nothing_the_agent_sends(
    make_model: MakeModel, server: ProviderServer
) -> None:
    server.queue_tool_call("forecast", {"city": "Oslo"})
    agent = Agent(AgentConfig(model=make_model(), tools=[forecast]))
    await agent.run("Weather in Oslo?")
    edited = agent.messages
    edited[1]["tool_calls"][0]["arguments"]["city"] = "EDITED"
    await agent.run("And tomorrow?")
    assert "EDITED" not in json.dumps(server.requests[-1].body)


def _openai_call_answer(name: str, arguments: str) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


async def test_arguments_that_are_not_json_are_an_error_and_the_tool_does_not_run(
    make_model: MakeModel, server: ProviderServer
) -> None:
    ran: list[dict[str, Any]] = []

    def search(**filters: Any) -> str:
        """Search with any filters."""
        ran.append(filters)
        return "3 results"

    server.queue_raw(_openai_call_answer("search", '{"color": "red",'))
    result = await Agent(AgentConfig(model=make_model(), tools=[search])).run_detailed("Red?")
    assert ran == []
    assert result.tool_results[0].is_error
    assert result.tool_results[0].content.startswith(
        "error: invalid arguments for search: not JSON"
    )
    sent = server.requests[-1].body["messages"][1]["tool_calls"][0]["function"]
    assert sent["arguments"] == '{"color": "red",', "the call goes back as the model wrote it"
