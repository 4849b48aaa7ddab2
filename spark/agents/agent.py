"""``Agent``: a model, a system prompt and tools, run in a loop until the model answers.

Each step is one ``model.generate`` call through the model's cache, so a replayed run (same
question, same tool results) makes no provider call at all. The agent's name stays local: it is
never sent, so agents that differ only in name share cache entries.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from spark.agents.cost import TOTAL, CostStats, CostTracker, reset_total_cost_stats
from spark.agents.tools import Tool, ToolResult, as_tool, run_tool_calls
from spark.errors import StructuredOutputError
from spark.models.base import Model
from spark.models.structured import StructuredSchema, structured_schema
from spark.types import ModelResponse, ToolCall, Usage

__all__ = ["Agent", "AgentConfig", "AgentResult", "AgentStep", "StopReason"]

logger = logging.getLogger("spark.agents")

StopReason = Literal["answer", "max_steps"]
# Arguments the agent itself sets on every call; ``params`` may not override them.
_RESERVED_PARAMS = frozenset({"messages", "system_prompt", "tools"})


@dataclass(frozen=True)
class AgentConfig:
    """How an agent works: its model, name, system prompt, tools and step limit.

    ``tools`` takes plain functions (sync or async) or ``Tool`` values; they are described to
    the model from their signatures and docstrings. ``max_steps`` bounds the model calls of one
    run. ``params`` are extra ``model.generate`` arguments (``temperature``, ``max_tokens``,
    ``tool_choice``...). ``name`` is for people and logs only: it is never sent to the model.
    """

    model: Model
    name: str = "agent"
    system_prompt: str | None = None
    tools: Sequence[Tool | Callable[..., Any]] = ()
    max_steps: int = 8
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")
        tools = tuple(as_tool(item) for item in self.tools)
        names = [t.name for t in tools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"two tools share the name(s) {', '.join(duplicates)}")
        reserved = _RESERVED_PARAMS & set(self.params)
        if reserved:
            raise ValueError(f"params may not set {', '.join(sorted(reserved))}; use the fields")
        object.__setattr__(self, "tools", tools)
        object.__setattr__(self, "params", dict(self.params))


@dataclass(frozen=True)
class AgentStep:
    """One model call of a run and the tool calls it asked for, with their results."""

    response: ModelResponse
    tool_results: tuple[ToolResult, ...] = ()


@dataclass(frozen=True)
class AgentResult:
    """The outcome of one run.

    ``text`` is the final answer. When the run stops at ``max_steps`` (``stop_reason ==
    "max_steps"``) the model was still asking for tools: ``text`` is then the last non-empty text
    the model wrote during the run ("" if none), and the last step's tool calls were not run.
    ``stats`` are this run's figures (what it spent, saved, and its cache hits).
    """

    text: str
    steps: tuple[AgentStep, ...]
    stats: CostStats
    stop_reason: StopReason = "answer"
    value: Any = None  # ``run_json``'s checked answer (None for ``run``)

    @property
    def stopped_by_max_steps(self) -> bool:
        """True when the run hit ``max_steps`` before the model answered."""
        return self.stop_reason == "max_steps"

    @property
    def usage(self) -> Usage:
        """Tokens of every step's call as recorded, cached or not (the conversation's size)."""
        return Usage(
            sum(step.response.usage.input_tokens for step in self.steps),
            sum(step.response.usage.output_tokens for step in self.steps),
        )

    @property
    def total_cost(self) -> float:
        """USD this run spent (cache hits cost nothing)."""
        return self.stats.total_cost

    @property
    def cache_hits(self) -> int:
        """Steps answered from the cache."""
        return self.stats.cache_hits

    @property
    def tool_results(self) -> tuple[ToolResult, ...]:
        """Every tool call of the run with its result, in order."""
        return tuple(result for step in self.steps for result in step.tool_results)


def _not_run(call: ToolCall, why: str) -> ToolResult:
    # Every call gets a result so the remembered conversation stays valid for the providers.
    return ToolResult(call, f"error: not run: {why}", is_error=True)


def assistant_turn(response: ModelResponse) -> list[dict[str, Any]]:
    """The history's messages of an answer: the assistant's text and tool calls, with the
    model's reasoning where its provider wants it back (docs/models.md, "Reasoning").

    Bedrock's reasoning blocks and Gemini's thought parts open the assistant's content (Bedrock
    refuses a tool loop with thinking whose last assistant turn does not start with them); the
    Responses API's reasoning items go before the assistant's message, as items of their own.
    """
    message: dict[str, Any] = {"role": "assistant", "content": response.text}
    if response.tool_calls:
        message["tool_calls"] = [call.to_dict() for call in response.tool_calls]
    reasoning = response.reasoning if isinstance(response.reasoning, list) else []
    items = [part for part in reasoning if isinstance(part, dict) and "type" in part]
    parts = [part for part in reasoning if isinstance(part, dict) and "type" not in part]
    if parts:
        message["content"] = [*parts, *([{"text": response.text}] if response.text else [])]
    return [*items, message]


class Agent:
    """Runs a model with tools; remembers the conversation across ``run`` calls.

    The history grows by the user's question, each assistant turn (with its tool calls), the
    tool results and the final answer. ``reset()`` forgets it. A run that raises (a provider
    error, say) leaves the history as it was before the run. One agent runs one query at a time.
    """

    _total: ClassVar[CostTracker] = TOTAL

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._tools: dict[str, Tool] = {t.name: t for t in map(as_tool, config.tools)}
        self._specs = [t.spec for t in self._tools.values()]
        self._history: list[dict[str, Any]] = []
        self._costs = CostTracker()
        self._running = False

    def __repr__(self) -> str:
        return (
            f"Agent({self.config.name!r}, model={self.config.model!r}, tools={list(self._tools)})"
        )

    @property
    def name(self) -> str:
        """The agent's name (local only)."""
        return self.config.name

    @property
    def messages(self) -> list[dict[str, Any]]:
        """A copy of the conversation so far, in the neutral message format (changing it
        changes nothing the agent sends next)."""
        return copy.deepcopy(self._history)

    def reset(self) -> None:
        """Forget the conversation (cost figures are kept: money spent stays spent)."""
        self._history.clear()

    # -- running ------------------------------------------------------------------------------

    async def run(self, query: str) -> str:
        """Ask ``query``; the final answer text."""
        return (await self.run_detailed(query)).text

    async def run_json(self, schema: Any, query: str) -> Any:
        """Ask ``query``; the final answer as structured data, like ``model.get_json``: an
        instance of ``schema`` (a pydantic ``BaseModel`` subclass) or the parsed object (a
        JSON-schema dict). Tools run as in ``run``; every model call asks for the schema, and a
        final answer that does not fit raises ``StructuredOutputError`` and is not cached."""
        structured = structured_schema(schema)
        result = await self._run(query, structured)
        if result.stop_reason != "answer":
            raise StructuredOutputError(
                f"agent {self.name!r} stopped after max_steps={self.config.max_steps} without a"
                " final answer",
                raw_text=result.text,
            )
        return result.value

    async def run_detailed(self, query: str) -> AgentResult:
        """Ask ``query``; the answer with every step, tool result and cost figure."""
        return await self._run(query, None)

    async def _run(self, query: str, structured: StructuredSchema | None) -> AgentResult:
        if self._running:
            raise RuntimeError(
                f"agent {self.name!r} is already running; runs share one conversation, "
                "so use another Agent for concurrent questions"
            )
        self._running = True
        start = len(self._history)
        self._history.append({"role": "user", "content": query})
        try:
            return await self._loop(structured)
        except BaseException:
            del self._history[start:]
            raise
        finally:
            self._running = False

    async def _loop(self, structured: StructuredSchema | None) -> AgentResult:
        steps: list[AgentStep] = []
        stats = CostStats()
        for number in range(1, self.config.max_steps + 1):
            response, value = await self._call_model(structured)
            stats += self._count(response)
            if not response.tool_calls:
                steps.append(AgentStep(response))
                if response.text:
                    self._history.extend(assistant_turn(response))
                return AgentResult(response.text, tuple(steps), stats, "answer", value)
            if response.finish_reason != "tool_calls":  # cut off or filtered: maybe incomplete
                why = f"the answer stopped with finish reason {response.finish_reason!r}"
                results = [_not_run(call, why) for call in response.tool_calls]
            elif number < self.config.max_steps:
                results = await run_tool_calls(response.tool_calls, self._tools)
            else:  # no model call would read them: do not cause a tool's side effects for nothing
                why = f"the agent stopped after max_steps={self.config.max_steps}"
                results = [_not_run(call, why) for call in response.tool_calls]
            steps.append(AgentStep(response, tuple(results)))
            self._remember_tool_turn(response, results)
        logger.info("agent %r stopped after max_steps=%d", self.name, self.config.max_steps)
        return AgentResult(_last_text(steps), tuple(steps), stats, "max_steps")

    async def _call_model(self, structured: StructuredSchema | None) -> tuple[ModelResponse, Any]:
        kwargs: dict[str, Any] = {
            "system_prompt": self.config.system_prompt,
            "tools": self._specs or None,
            **self.config.params,
        }
        value = None
        if structured is None:
            response = await self.config.model.generate(list(self._history), **kwargs)
        else:
            model = self.config.model
            response, value = await model.structured_call(structured, list(self._history), kwargs)
        logger.debug(
            "agent %r: %s, %d tool call(s)",
            self.name,
            "cache hit" if response.cached else "provider call",
            len(response.tool_calls),
        )
        return response, value

    def _remember_tool_turn(self, response: ModelResponse, results: list[ToolResult]) -> None:
        self._history.extend(assistant_turn(response))
        self._history.extend(result.to_message() for result in results)

    # -- cost -----------------------------------------------------------------------------

    def _count(self, response: ModelResponse) -> CostStats:
        stats = CostStats.of_response(response)
        self._costs.add(stats)
        self._total.add(stats)
        return stats

    def get_cost_stats(self) -> CostStats:
        """What this agent's model calls spent and saved, across all its runs."""
        return self._costs.snapshot()

    def reset_cost_stats(self) -> None:
        """Zero this agent's figures (the process-wide figures keep them)."""
        self._costs.reset()

    @classmethod
    def get_total_cost_stats(cls) -> CostStats:
        """The figures of every agent of this process (same as ``total_cost_stats()``)."""
        return cls._total.snapshot()

    @classmethod
    def reset_total_cost_stats(cls) -> None:
        """Zero the process-wide figures (same as ``reset_total_cost_stats()``)."""
        reset_total_cost_stats()


def _last_text(steps: Sequence[AgentStep]) -> str:
    for step in reversed(steps):
        if step.response.text:
            return step.response.text
    return ""
