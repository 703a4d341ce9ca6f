"""Reasoning options and bot parameters reach the bot as the parameter it actually has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from poe2openai.conversation import ReasoningRequest
from poe2openai.errors import ApiError
from poe2openai.frontends.openai_chat.reasoning import read_request
from poe2openai.poe.bot_parameters import apply_suffix, bot_parameters, split_suffix
from poe2openai.simulator import MODELS, Simulator

from .conftest import Running, user

PARAMS = {m["id"]: m["parameters"] for m in MODELS}


def params_for(model: str, raw: dict[str, Any], suffix: str | None = None) -> dict[str, Any]:
    asked = read_request(raw)
    apply_suffix(asked, suffix)
    return bot_parameters(asked, PARAMS[model])


def test_effort_to_each_kind_of_parameter() -> None:
    assert params_for("gpt-5", {"reasoning_effort": "high"}) == {"reasoning_effort": "high"}
    assert params_for("gpt-5", {"reasoning_effort": "none"}) == {"reasoning_effort": "minimal"}
    assert params_for("claude-sonnet-4.5", {"reasoning_effort": "medium"}) == {"thinking_budget": 8192}
    assert params_for("deepseek-r1", {"reasoning_effort": "none"}) == {"enable_thinking": False}
    assert params_for("deepseek-r1", {"reasoning_effort": "low"}) == {"enable_thinking": True}
    level = [{"name": "thinking_level", "schema": {"type": "string", "enum": ["low", "high"]}}]
    assert bot_parameters(read_request({"reasoning_effort": "medium"}), level) == {"thinking_level": "low"}
    assert bot_parameters(read_request({"reasoning_effort": "minimal"}), level) == {"thinking_level": "low"}


def test_budgets_clamp_and_convert() -> None:
    raw = {"thinking": {"type": "enabled", "budget_tokens": 30000}}
    assert params_for("claude-sonnet-4.5", raw) == {"thinking_budget": 30000}
    assert params_for("gemini-2.5-pro", {"google": {"thinking_config": {"thinking_budget": 1024}}}) == {
        "thinking_budget": 1024
    }
    assert params_for("gemini-2.5-pro", {"extra_body": {"google": {"thinking_config": {"thinking_budget": 0}}}}) == {
        "thinking_budget": 0
    }
    assert params_for("gpt-5", {"thinking": {"type": "enabled", "budget_tokens": 16000}}) == {
        "reasoning_effort": "high"
    }
    assert params_for("deepseek-r1", {"thinking": {"type": "disabled"}}) == {"enable_thinking": False}
    clamp = [{"name": "thinking_budget", "schema": {"type": "number", "minimum": 1024, "maximum": 4000}}]
    assert bot_parameters(ReasoningRequest(budget=100), clamp) == {"thinking_budget": 1024}
    assert bot_parameters(ReasoningRequest(budget=9000), clamp) == {"thinking_budget": 4000}


def test_unlisted_bots_get_the_names_as_given_and_unrelated_bots_nothing() -> None:
    assert bot_parameters(read_request({"reasoning_effort": "low"}), None) == {"reasoning_effort": "low"}
    assert params_for("gpt-4o-mini", {"reasoning_effort": "high"}) == {}


def test_suffixes() -> None:
    assert split_suffix("gpt-5:high") == ("gpt-5", "high")
    assert split_suffix("claude-sonnet-4.5:thinking-2000") == ("claude-sonnet-4.5", "thinking-2000")
    assert split_suffix("my:bot") == ("my:bot", None)
    assert params_for("gpt-5", {}, "low") == {"reasoning_effort": "low"}
    assert params_for("claude-sonnet-4.5", {}, "thinking") == {"thinking_budget": 8192}
    assert params_for("claude-sonnet-4.5", {}, "thinking-2000") == {"thinking_budget": 2000}
    assert params_for("gpt-5", {"reasoning_effort": "minimal"}, "high") == {"reasoning_effort": "minimal"}


def test_suffix_digits_are_ascii_only_and_any_number_of_them_clamps() -> None:
    for odd in ("claude-sonnet-4.5x:thinking-²", "m:thinking-٣", "m:thinking-", "m:thinking-1²"):
        assert split_suffix(odd) == (odd, None)
    many = "thinking-" + "9" * 5000  # past int()'s 4300 digits
    assert split_suffix("m:" + many) == ("m", many)
    assert params_for("claude-sonnet-4.5", {}, many) == {"thinking_budget": 30768}
    assert params_for("claude-sonnet-4.5", {}, "thinking-" + "0" * 5000 + "12") == {"thinking_budget": 12}
    assert params_for("claude-sonnet-4.5", {}, "thinking-0000") == {"thinking_budget": 0}


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 40000}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": -1}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"google": {"thinking_config": {"thinking_budget": 99999}}}, "google.thinking_config.thinking_budget"),
        ({"poe_parameters": [1]}, "poe_parameters"),
    ],
)
def test_bad_values_are_400s_naming_the_field(raw: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as info:
        read_request(raw)
    assert info.value.status == 400 and info.value.param == param


def test_poe_parameters_are_checked_against_the_schema() -> None:
    assert params_for("nano-banana", {"poe_parameters": {"aspect_ratio": "16:9", "seed": 7}}) == {
        "aspect_ratio": "16:9",
        "seed": 7,
    }
    with pytest.raises(ApiError) as info:
        params_for("nano-banana", {"poe_parameters": {"aspect_ratio": "4:3"}})
    assert info.value.param == "poe_parameters.aspect_ratio"
    with pytest.raises(ApiError):
        params_for("gpt-5", {"poe_parameters": {"web_search": "yes"}})


def last_user(sim: Simulator, bot: str) -> dict[str, Any]:
    query = sim.bodies(bot)[-1]["query"]
    msg: dict[str, Any] = next(m for m in reversed(query) if m["role"] == "user")
    return msg


async def test_options_reach_the_simulator(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    await client.chat.completions.create(
        model="gpt-5", messages=user("x"), reasoning_effort="high", extra_body={"poe_parameters": {"web_search": True}}
    )
    assert last_user(sim, "gpt-5")["parameters"] == {"reasoning_effort": "high", "web_search": True}
    await client.chat.completions.create(
        model="gemini-2.5-pro",
        messages=user("x"),
        extra_body={"google": {"thinking_config": {"thinking_budget": 2048, "include_thoughts": True}}},
    )
    assert last_user(sim, "gemini-2.5-pro")["parameters"] == {"thinking_budget": 2048}
    await client.chat.completions.create(model="Claude-Sonnet-4.5:thinking", messages=user("x"))
    assert last_user(sim, "claude-sonnet-4.5")["parameters"] == {"thinking_budget": 8192}
    await client.chat.completions.create(model="gpt-4o-mini", messages=user("plain"))
    assert "parameters" not in last_user(sim, "gpt-4o-mini")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="claude-sonnet-4.5",
            messages=user("x"),
            extra_body={"thinking": {"type": "enabled", "budget_tokens": 50000}},
        )
    assert info.value.body["param"] == "thinking.budget_tokens"  # type: ignore[index]


async def test_reasoning_flags_opt_in(gw: Running, sim: Simulator, client: openai.AsyncOpenAI) -> None:
    (Path(gw.gateway.settings.config_dir) / "models.yaml").write_text("models:\n  gpt-5:\n    reasoning_flags: true\n")
    await gw.gateway.config.refresh()  # a hand edit is read in the background; wait for it
    await client.chat.completions.create(model="gpt-5:high", messages=user("Solve it"))
    msg = last_user(sim, "gpt-5")
    assert msg["content"] == "Solve it --reasoning_effort high" and "parameters" not in msg
