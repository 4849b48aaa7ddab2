"""Scripts that call ``asyncio.run`` several times: SDK clients live and die with their loop.

Each run builds (or reuses) a model against the local provider server and never calls
``aclose()``; the garbage collector runs inside the next loop, which is where an SDK client of a
closed loop used to schedule its doomed close ("Task exception was never retrieved ... Event
loop is closed").
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spark.testing import ProviderServer

pytest.importorskip("openai")
pytest.importorskip("google.genai")

SCRIPT = """
import asyncio, gc, sys
from spark.testing import ProviderServer
from spark.models.openai import OpenAIModel
from spark.models.gemini import GeminiModel

provider, shape = sys.argv[1], sys.argv[2]

def build(server):
    if provider == "openai":
        return OpenAIModel("gpt-4o-mini", base_url=server.openai_base_url, api_key="k", max_retries=0)
    return GeminiModel("gemini-2.0-flash", base_url=server.gemini_base_url, api_key="k", max_retries=0)

with ProviderServer() as server:
    shared = build(server)

    async def main(run):
        gc.collect()  # collect the previous run's model here, under this loop
        await asyncio.sleep(0.01)
        model = shared if shape == "shared" else build(server)
        if run == 1:
            return "".join([chunk async for chunk in model.stream_text(f"run {run}")])
        return await model.get_text(f"run {run}")

    for run in range(3):
        print(bool(asyncio.run(main(run))))
    del shared
    gc.collect()
print("done")
"""


@pytest.mark.parametrize("provider", ["openai", "gemini"])
@pytest.mark.parametrize("shape", ["fresh", "shared"])
def test_three_asyncio_runs_without_aclose_print_no_traceback(
    tmp_path: Path, provider: str, shape: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", SCRIPT, provider, shape],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True", "True", "True", "done"]
    for sign in ("Traceback", "never retrieved", "Event loop is closed", "ResourceWarning"):
        assert sign not in done.stderr, done.stderr


def _is_closed(client: Any) -> bool:
    if hasattr(client, "is_closed"):  # openai.AsyncOpenAI
        return bool(client.is_closed())
    return bool(client.aio._api_client._async_httpx_client.is_closed)  # google.genai.Client


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_the_client_of_a_loop_is_closed_when_asyncio_run_returns(
    server: ProviderServer, provider: str
) -> None:
    model_id = "gpt-4o-mini" if provider == "openai" else "gemini-2.0-flash"
    model = server.model(provider, model_id)

    async def ask() -> Any:
        await model.get_text("Hi")
        client = model._clients[asyncio.get_running_loop()]  # white box: this loop's client
        assert not _is_closed(client)
        return client

    first = asyncio.run(ask())
    assert _is_closed(first)
    second = asyncio.run(ask())

    assert first is not second
    assert _is_closed(second)
    assert server.count(provider) == 2


@pytest.mark.parametrize("provider", ["openai", "gemini"])
async def test_aclose_closes_the_loops_client_and_the_next_call_builds_another(
    server: ProviderServer, provider: str
) -> None:
    model_id = "gpt-4o-mini" if provider == "openai" else "gemini-2.0-flash"
    model = server.model(provider, model_id)
    loop = asyncio.get_running_loop()
    await model.get_text("Hi")
    first = model._clients[loop]

    await model.aclose()

    assert loop not in model._clients
    await model.get_text("Again")
    assert model._clients[loop] is not first
    await model.aclose()
    assert server.count(provider) == 2


def test_a_loop_closed_by_hand_has_its_client_closed_on_the_next_call(
    server: ProviderServer,
) -> None:
    model = server.model("gemini", "gemini-2.0-flash")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(model.get_text("Hi"))
    client = model._clients[loop]
    loop.close()  # no shutdown_asyncgens: the client outlives its loop

    asyncio.run(model.get_text("Again"))

    assert loop not in model._clients
    assert client.aio._api_client._async_httpx_client.is_closed
