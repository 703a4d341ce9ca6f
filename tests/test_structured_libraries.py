"""The libraries agents use to get data out of a model, against the gateway and a text-only bot:
pydantic-ai (``NativeOutput``, and its streamed agent with a tool) and LangChain's
``with_structured_output``. Each gets a parsed object (or runs the tool) without any help."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from poe2openai.simulator import Simulator

from .conftest import Running

pydantic_ai = pytest.importorskip("pydantic_ai")
langchain_openai = pytest.importorskip("langchain_openai")

from pydantic_ai import Agent, NativeOutput  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402


class City(BaseModel):
    name: str
    population: int
    landmarks: list[str]


def model(gw: Running, bot: str = "gpt-4o-mini") -> Any:
    return OpenAIChatModel(bot, provider=OpenAIProvider(base_url=f"{gw.url}/v1", api_key="test-key"))


def system_prompt(sim: Simulator, bot: str) -> str:
    return str(next(m["content"] for m in sim.bodies(bot)[-1]["query"] if m["role"] == "system"))


async def test_pydantic_ai_native_output(gw: Running, sim: Simulator) -> None:
    agent = Agent(model(gw), output_type=NativeOutput(City))
    result = await agent.run("Tell me about Paris")
    assert isinstance(result.output, City) and result.output.landmarks
    assert "# Answer format" in system_prompt(sim, "gpt-4o-mini")


async def test_pydantic_ai_native_output_streamed(gw: Running, sim: Simulator) -> None:
    agent = Agent(model(gw), output_type=NativeOutput(City))
    async with agent.run_stream("Tell me about Paris") as result:
        output = await result.get_output()
    assert isinstance(output, City)


async def test_pydantic_ai_streamed_agent_runs_its_tool(gw: Running, sim: Simulator) -> None:
    calls: list[str] = []
    agent = Agent(model(gw))

    @agent.tool_plain
    def lookup_city(city: str) -> str:
        """Facts about a city."""
        calls.append(city)
        return "Paris has 2.1 million people"

    async with agent.run_stream("Paris") as result:
        output = await result.get_output()
    # the bot writes no sentence before its call, so the stream's first text is the real answer
    assert calls == ["Paris"]
    assert output == "The tool answered: Paris has 2.1 million people"
    assert "no text before it" in system_prompt(sim, "gpt-4o-mini")


async def test_langchain_with_structured_output(gw: Running, sim: Simulator) -> None:
    llm = langchain_openai.ChatOpenAI(model="gpt-4o-mini", base_url=f"{gw.url}/v1", api_key="test-key", max_retries=0)
    city = await llm.with_structured_output(City).ainvoke("Tell me about Paris")
    assert isinstance(city, City) and city.population == 1
    body = sim.bodies("gpt-4o-mini")[-1]
    assert '"title":"City"' in system_prompt(sim, "gpt-4o-mini") or "population" in str(body)


async def test_instructor_json_schema_mode(client: Any, sim: Simulator) -> None:
    # not in the test extra: instructor 1.17 pins jiter<0.15, the openai SDK in use needs >=0.16
    instructor = pytest.importorskip("instructor")
    patched = instructor.from_openai(client, mode=instructor.Mode.JSON_SCHEMA)
    city = await patched.chat.completions.create(
        model="gpt-4o-mini", response_model=City, messages=[{"role": "user", "content": "Paris"}], max_retries=0
    )
    assert isinstance(city, City) and city.landmarks == ["Paris"]
