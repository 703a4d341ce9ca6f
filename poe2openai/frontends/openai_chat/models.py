"""``GET /v1/models``: Poe's model list in OpenAI's shape."""

from __future__ import annotations

from aiohttp import web

from poe2openai.engine.gateway import GATEWAY
from poe2openai.engine.http import json_response, model_list_shape, optional_api_key
from poe2openai.errors import not_found, shown


async def list_models(request: web.Request) -> web.Response:
    """The models clients may use (in another dialect's shape when the request is of it)."""
    gw = request.app[GATEWAY]
    models = await gw.models_for(optional_api_key(request))
    shape = model_list_shape(request)
    if shape is not None:
        return shape[0](request, models)
    return json_response({"object": "list", "data": models})


async def get_model(request: web.Request) -> web.Response:
    """One model, by the name clients use (any case)."""
    gw = request.app[GATEWAY]
    wanted = request.match_info["model"].lower()
    for model in await gw.models_for(optional_api_key(request)):
        if str(model["id"]).lower() == wanted:
            shape = model_list_shape(request)
            return shape[1](model) if shape is not None else json_response(model)
    raise not_found(f"The model {shown(request.match_info['model'])} does not exist", "model_not_found")


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return json_response({"status": "ok"})
