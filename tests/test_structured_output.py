"""Structured output end to end: ``response_format`` asked of a text-only bot, the JSON value
stripped of prose and fences, validated, re-asked once, and errors a client can read."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest
from pydantic import BaseModel

from poe2openai.conversation import OutputFormat
from poe2openai.pipeline.deltas import Delta, End, Failure, ReasoningDelta, TextDelta
from poe2openai.pipeline.json_output import JsonOutput
from poe2openai.simulator import DONE, Simulator, Sleep, example_value, text, texts

from .chunking import every_two_way_split
from .conftest import Running, user


class Address(BaseModel):
    city: str
    zip_code: str | None = None


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]
    address: Address


PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def schema_format(strict: bool = True, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": schema or PERSON_SCHEMA, "strict": strict},
    }


def system_of(sim: Simulator, bot: str, i: int = -1) -> str:
    return str(next(m["content"] for m in sim.bodies(bot)[i]["query"] if m["role"] == "system"))


async def test_sdk_parse_gets_a_pydantic_object(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    done = await client.chat.completions.parse(
        model="gpt-4o-mini", messages=user("Describe Ada"), response_format=Person
    )
    person = done.choices[0].message.parsed
    assert isinstance(person, Person) and person.name == "Describe Ada" and person.tags == ["Describe Ada"]
    content = done.choices[0].message.content or ""
    assert content.startswith("{") and content.endswith("}")  # the sentence and fence are gone
    system = system_of(sim, "gpt-4o-mini")
    assert "# Answer format" in system and '"title":"Person"' in system and "no Markdown code fence" in system


async def test_sdk_stream_helper_gets_a_parsed_object_in_many_chunks(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    value = Person(name="Ada", age=36, tags=["math"], address=Address(city="London")).model_dump_json(indent=1)
    answer = f"Here you go:\n```json\n{value}\n```\nDone."
    steps: list[Any] = []
    for i in range(0, len(answer), 10):  # paced, so that the gateway reads them one by one
        steps += [text(answer[i : i + 10]), Sleep(0.005)]
    sim.script("gpt-4o-mini", [*steps, DONE])
    contents: list[str] = []
    async with client.chat.completions.stream(
        model="gpt-4o-mini", messages=user("Describe Ada"), response_format=Person
    ) as stream:
        async for event in stream:
            if event.type == "content.delta" and event.delta:
                contents.append(event.delta)
        final = await stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Person)
    assert final.choices[0].finish_reason == "stop"
    assert len(contents) > 5 and contents[0].startswith("{")
    assert "".join(contents) == value


async def test_json_object_gives_a_json_object(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    done = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user("Give me JSON"), response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(done.choices[0].message.content or ""), dict)
    assert "The value is a JSON object." in system_of(sim, "gpt-4o-mini")


async def test_a_wrong_answer_is_asked_again_once(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("Sure! Ada is 36 years old."))  # then the bot follows the schema
    done = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user("Ada"), response_format=schema_format()
    )
    value = json.loads(done.choices[0].message.content or "")
    assert list(value) == ["name", "age"] and value["age"] == 1  # the second answer follows the schema
    bodies = sim.bodies("gpt-4o-mini")
    assert len(bodies) == 2
    *_, bad, fix = bodies[1]["query"]
    assert bad["role"] == "bot" and fix["role"] == "user"
    assert "it holds no JSON value; it began 'Sure! Ada is 36 years old.'" in fix["content"]


async def test_a_schema_mismatch_quotes_the_validation_error(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts('```json\n{"name": "Ada", "age": "36"}\n```'))
    done = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user("Ada"), response_format=schema_format()
    )
    value = json.loads(done.choices[0].message.content or "")
    assert list(value) == ["name", "age"] and value["age"] == 1  # the second answer follows the schema
    bad, fix = sim.bodies("gpt-4o-mini")[1]["query"][-2:]
    assert bad["content"] == '{"name": "Ada", "age": "36"}'
    assert "'36' is not of type 'integer' (at /age)" in fix["content"]


async def test_wrong_twice_is_a_clear_error_the_sdk_does_not_retry(gw: Running, sim: Simulator) -> None:
    for _ in range(2):
        sim.script("gpt-4o-mini", texts('{"name": "Ada"'))
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=2)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("Ada"), response_format=schema_format())
    await client.close()
    err = caught.value
    assert err.status_code == 502 and err.response.headers["x-should-retry"] == "false"
    assert err.body["code"] == "invalid_structured_output"  # type: ignore[index]
    assert "is not valid JSON" in err.body["message"]  # type: ignore[index]
    assert len(sim.bodies("gpt-4o-mini")) == 2  # one re-ask, no SDK retries


async def test_strict_false_delivers_a_value_that_still_misses_the_schema(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    for _ in range(2):
        sim.script("gpt-4o-mini", texts('{"name": "Ada", "age": "36"}'))
    done = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user("Ada"), response_format=schema_format(strict=False)
    )
    assert json.loads(done.choices[0].message.content or "") == {"name": "Ada", "age": "36"}
    assert len(sim.bodies("gpt-4o-mini")) == 2  # re-asked once all the same


async def sse_lines(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> list[str]:
    async with http.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"}) as resp:
        assert resp.status == 200
        raw = (await resp.read()).decode()
    return [line[6:] for line in raw.split("\n") if line.startswith("data: ")]


async def test_a_stream_with_invalid_json_ends_with_an_error_frame(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.script("gpt-4o-mini", texts("Here it is: ", '{"name": "Ada", ', '"age": 3x}', " done"))
    body = {"model": "gpt-4o-mini", "messages": user("Ada"), "stream": True, "response_format": schema_format()}
    frames = await sse_lines(http, gw.url, body)
    assert frames[-1] == "[DONE]"
    error = json.loads(frames[-2])["error"]
    assert error["code"] == "invalid_structured_output" and "is not valid JSON" in error["message"]
    chunks = [json.loads(f) for f in frames[:-2]]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == '{"name": "Ada", "age": 3x}'  # streamed as it came, prose dropped
    assert len(sim.bodies("gpt-4o-mini")) == 1  # a stream is never re-asked


async def test_a_stream_that_misses_a_strict_schema_names_the_problem(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.script("gpt-4o-mini", texts('{"name": "Ada", "age": 36, "extra": 1}'))
    body = {"model": "gpt-4o-mini", "messages": user("Ada"), "stream": True, "response_format": schema_format()}
    frames = await sse_lines(http, gw.url, body)
    error = json.loads(frames[-2])["error"]
    assert "Additional properties are not allowed ('extra' was unexpected)" in error["message"]


async def test_reasoning_stays_out_of_the_json(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    done = await client.chat.completions.parse(model="deepseek-r1", messages=user("Ada"), response_format=Person)
    message: Any = done.choices[0].message
    assert isinstance(message.parsed, Person)
    assert "The user wants JSON" in message.model_extra["reasoning_content"]
    assert "Thinking" not in (message.content or "")


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        ("json", "response_format"),
        ({"type": "xml"}, "response_format.type"),
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}, "response_format.json_schema.name"),
        ({"type": "json_schema", "json_schema": {"name": "p", "strict": "yes"}}, "response_format.json_schema.strict"),
        (
            {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "objekt"}}},
            "response_format.json_schema.schema",
        ),
        ({"type": "json_schema", "json_schema": {"name": "p", "schema": []}}, "response_format.json_schema.schema"),
    ],
)
async def test_a_bad_response_format_is_a_400_naming_the_field(
    client: openai.AsyncOpenAI, sim: Simulator, response_format: Any, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), response_format=response_format)
    assert caught.value.param == param
    assert sim.bodies() == []


# --- the stage on its own, in every chunking --------------------------------------------------

VALUE = '{"name": "A {b} [c]", "list": [1, 2, {"x": "\\"}"}]}'


def reduce(chunks: list[str], fmt: OutputFormat) -> list[Delta]:
    stage = JsonOutput(fmt)
    out: list[Delta] = []
    for c in chunks:
        out += stage.feed([TextDelta(c)])
    return out + stage.feed([End()])


@pytest.mark.parametrize(
    "answer",
    [
        VALUE,
        f"Here is {{the}} value:\n```json\n{VALUE}\n```\nAnything else?",
        f"Sure [1]. {VALUE} That is all {{ok}}.",
    ],
)
def test_the_value_alone_in_every_split(answer: str) -> None:
    for chunks in every_two_way_split(answer):
        out = reduce(chunks, OutputFormat("json_object"))
        assert "".join(d.text for d in out if isinstance(d, TextDelta)) == VALUE, chunks
        assert out[-1] == End()


def test_reasoning_passes_and_a_cut_answer_is_not_judged() -> None:
    stage = JsonOutput(OutputFormat("json_object"))
    out = stage.feed([ReasoningDelta("hmm {"), TextDelta('{"a": '), End("length")])
    assert out == [ReasoningDelta("hmm {"), TextDelta("{"), TextDelta('"a": '), End("length")]
    assert stage.problem is None
    failed = JsonOutput(OutputFormat("json_object")).feed([TextDelta("no json here"), End()])
    assert isinstance(failed[-1], Failure) and "holds no JSON value" in failed[-1].error.message


@pytest.mark.parametrize(
    "schema",
    [
        Person.model_json_schema(),
        {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2},
        {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"n": {"type": "number", "minimum": 3}}}]},
    ],
)
def test_the_simulator_answers_what_the_schema_asks(schema: dict[str, Any]) -> None:
    from jsonschema import validate

    validate(example_value(schema, "said"), schema)
