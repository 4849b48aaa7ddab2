"""An answer cut off at the token limit says so: its finish reason is ``length`` on every
provider, plain and streamed, on the miss and the hit, also when it was cut inside a tool call
(whose arguments are then incomplete: kept as text under ``_raw``), and a cut-off stream is no
broken stream (docs/models.md, "Calls")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from spark.agents import Agent, AgentConfig
from spark.models._bedrock_answers import StreamAssembler, parse_converse
from spark.testing import ProviderServer

QUESTION = "Write the file."
WRITE = {
    "name": "write_file",
    "description": "Write a file.",
    "parameters": {"type": "object", "properties": {"path": {}, "content": {}}},
}
ARGUMENTS = {"path": "notes.txt", "content": "hello from the harbour"}
# provider, model id, model options.
MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "openai-chat": ("openai", "gpt-4o-mini", {}),
    "openai-responses": ("openai", "gpt-4o-mini", {"api": "responses"}),
    "gemini": ("gemini", "gemini-2.0-flash", {}),
    "bedrock": ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", {}),
}


async def answer(model: Any, streamed: bool, **keywords: Any) -> Any:
    if streamed:
        [piece async for piece in model.stream_text(QUESTION, **keywords)]
    return await model.generate(QUESTION, **keywords)  # (the stored answer, when streamed)


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("case", sorted(MODELS))
async def test_a_cut_off_text_answer_says_length(
    models: Callable[..., Any], server: ProviderServer, case: str, streamed: bool
) -> None:
    provider, model_id, options = MODELS[case]
    model = models(provider, model_id, **options)
    server.queue_cut_off()

    miss = await answer(model, streamed)
    hit = await model.generate(QUESTION)

    assert miss.finish_reason == "length"
    assert miss.text
    assert (hit.cached, hit.finish_reason, hit.text) == (True, "length", miss.text)


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("case", ["openai-chat", "openai-responses", "bedrock"])
async def test_a_tool_call_cut_off_is_not_a_finished_call(
    models: Callable[..., Any], server: ProviderServer, case: str, streamed: bool
) -> None:
    provider, model_id, options = MODELS[case]
    model = models(provider, model_id, **options)
    server.queue_tool_call("write_file", ARGUMENTS)
    server.queue_cut_off()

    miss = await answer(model, streamed, tools=[WRITE])

    assert miss.finish_reason == "length"
    (call,) = miss.tool_calls
    if streamed or provider == "openai":  # (Bedrock's plain answer parses the input itself)
        assert set(call.arguments) == {"_raw"}
        assert '{"path": "notes.txt"'.startswith(call.arguments["_raw"][:20])
    hit = await model.generate(QUESTION, tools=[WRITE])
    assert (hit.cached, hit.finish_reason, hit.tool_calls) == (True, "length", miss.tool_calls)


async def test_an_agent_runs_no_call_of_an_answer_cut_off(
    models: Callable[..., Any], server: ProviderServer
) -> None:
    written: list[dict[str, Any]] = []

    def write_file(path: str, content: str) -> str:
        """Write a file.

        Args:
            path: Where.
            content: What.
        """
        written.append({"path": path, "content": content})
        return "written"

    server.queue_tool_call("write_file", ARGUMENTS)
    server.queue_cut_off()
    agent = Agent(AgentConfig(model=models("openai", "gpt-4o-mini"), tools=[write_file]))

    result = await agent.run_detailed(QUESTION)

    assert written == []
    (not_run,) = result.steps[0].tool_results
    assert not_run.is_error
    assert "finish reason 'length'" in not_run.content
    assert result.stop_reason == "answer"  # the model answered after the error result


def test_bedrock_calls_the_provider_ran_itself_are_not_the_callers() -> None:
    server_call = {"toolUseId": "s1", "name": "nova_grounding", "input": {"query": "q"}}
    server_call["type"] = "server_tool_use"
    ran = {"toolResult": {"toolUseId": "s1", "content": [{"text": "found"}]}}
    blocks = [{"toolUse": server_call}, ran, {"text": "From the web."}]

    plain = parse_converse({"output": {"message": {"content": blocks}}, "stopReason": "end_turn"})

    assert (plain.text, plain.tool_calls, plain.finish_reason) == ("From the web.", (), "stop")
    assert plain.provider_output == [{"toolUse": server_call}, ran]
    stream = StreamAssembler("nova")
    start = {"toolUse": {k: server_call[k] for k in ("toolUseId", "name", "type")}}
    events: list[dict[str, Any]] = [
        {"contentBlockStart": {"start": start, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"toolUse": {"input": '{"query": "q"}'}}}},
        {"contentBlockDelta": {"delta": {"text": "From the web."}, "contentBlockIndex": 1}},
        {"messageStop": {"stopReason": "end_turn"}},
    ]
    for event in events:
        stream.add(event)
    streamed = stream.response()
    assert (streamed.text, streamed.tool_calls, streamed.finish_reason) == (
        "From the web.",
        (),
        "stop",
    )
    assert streamed.provider_output == [{"toolUse": server_call}]


def test_bedrock_input_that_is_not_an_object_is_kept_as_text() -> None:
    use = {"toolUseId": "t1", "name": "f", "input": ["a", "b"]}
    answer = parse_converse({"output": {"message": {"content": [{"toolUse": use}]}}})

    (call,) = answer.tool_calls
    assert call.arguments == {"_raw": '["a", "b"]'}
    assert answer.to_dict()["tool_calls"][0]["arguments"] == {"_raw": '["a", "b"]'}
