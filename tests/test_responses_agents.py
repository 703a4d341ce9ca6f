"""The OpenAI Agents SDK with its default model (the Responses API), pointed at the gateway only by
its client: no ``set_default_openai_api("chat_completions")``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import pytest_asyncio

from poe2openai.simulator import Simulator

from .conftest import Running

agents = pytest.importorskip("agents")


@pytest_asyncio.fixture
async def default_client(gw: Running) -> AsyncIterator[openai.AsyncOpenAI]:
    """The gateway as the Agents SDK's default client, as a user would set it up."""
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="test-key", max_retries=0)
    agents.set_default_openai_client(client, use_for_tracing=False)
    agents.set_tracing_disabled(True)
    yield client
    await client.close()


async def test_agent_runs_a_tool_on_the_default_responses_model(
    default_client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    seen: list[str] = []

    @agents.function_tool
    def lookup_capital(country: str) -> str:
        """The capital city of a country."""
        seen.append(country)
        return "Kathmandu"

    agent = agents.Agent(name="geo", instructions="Answer with the tool.", tools=[lookup_capital], model="gpt-5")
    result = await agents.Runner.run(agent, "Capital of Nepal?")
    assert seen == ["Capital of Nepal?"]  # the simulator's tool bot passes the question on
    assert result.final_output == "The tool answered: Kathmandu"
    first, second = sim.bodies("gpt-5")[-2:]
    assert first["query"][0]["role"] == "system" and "## lookup_capital" in first["query"][0]["content"]
    assert "Answer with the tool." in first["query"][0]["content"]
    assert second["query"][-1]["content"].startswith('<tool_result name="lookup_capital">')


async def test_agent_streamed_run(default_client: openai.AsyncOpenAI, sim: Simulator) -> None:
    agent = agents.Agent(name="echo", instructions="Repeat.", model="gpt-4o-mini")
    result = agents.Runner.run_streamed(agent, "Hello agents")
    kinds: list[str] = []
    async for event in result.stream_events():
        data: Any = getattr(event, "data", None)
        if event.type == "raw_response_event" and data is not None:
            kinds.append(data.type)
    assert result.final_output == "You said: Hello agents"
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
