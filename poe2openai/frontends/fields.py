"""Field checks every dialect's request parser shares: the body, the model, required strings.

Each raises the 400 naming the field (``param``), never anything else.
"""

from __future__ import annotations

from typing import Any

from poe2openai.errors import bad_request

MAX_MODEL_NAME = 256  # characters; Poe's bot names are far shorter


def json_object(body: Any) -> dict[str, Any]:
    """The decoded body, which must be a JSON object."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object", None, "invalid_json")
    return body


def model_name(body: dict[str, Any], missing: str = "model is required and must be a non-empty string") -> str:
    """The ``model`` field, stripped (``missing``: the dialect's wording when it is absent)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request(missing, "model", "missing_required_parameter")
    model = model.strip()
    if len(model) > MAX_MODEL_NAME:
        raise bad_request(f"model is longer than {MAX_MODEL_NAME} characters", "model")
    return model


def required_string(obj: dict[str, Any], key: str, where: str) -> str:
    """``obj[key]``, which must be a non-empty string (``where``: the path of ``obj``)."""
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request(f"{where}.{key} must be a non-empty string", f"{where}.{key}")
    return value
