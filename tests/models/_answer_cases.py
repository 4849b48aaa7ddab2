"""What the tests of answers that do not fit share (tests/models/test_malformed_answers.py and
test_answer_shape.py): the question, the models by case, envelopes of the OpenAI answers, ids."""

from __future__ import annotations

from typing import Any

QUESTION = "Say hi."
# case -> (provider, model id, model options).
MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "openai-chat": ("openai", "gpt-4o-mini", {}),
    "openai-responses": ("openai", "gpt-4o-mini", {"api": "responses"}),
    "bedrock": ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", {}),
    "gemini": ("gemini", "gemini-2.0-flash", {}),
}
CHAT = {"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini"}
RESPONSE = {"id": "r", "object": "response", "created_at": 1, "model": "gpt-4o-mini"}


def case_ids(cases: list[tuple[str, str, Any]]) -> list[str]:
    """Test ids of ``(case, name, payload)`` cases."""
    return [f"{case}-{name}" for case, name, _ in cases]
