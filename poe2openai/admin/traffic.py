"""``GET /admin/api/traffic``: the last hour per minute and per model, for the Traffic view.

With Redis the answer merges every process that shares it (each keeps its last hour there,
refreshed every few seconds); without Redis, the workers of one gunicorn master meet in a
shared folder the same way; otherwise it is this process's own traffic.
"""

from __future__ import annotations

from aiohttp import web

from poe2openai.admin.api import guarded
from poe2openai.engine.gateway import GATEWAY
from poe2openai.engine.http import json_response
from poe2openai.engine.traffic import merge


async def traffic(request: web.Request) -> web.Response:
    """The Traffic view's series."""
    gw = request.app[GATEWAY]
    own = gw.metrics.traffic.export()
    exports = None
    shared, folder = gw.shared, gw.metrics.traffic_folder
    if shared is not None:
        await shared.put_traffic(own)  # this process as it is now
        exports = await shared.all_traffic()
    if exports is None and folder is not None:
        await folder.write()
        exports = await folder.all()
    processes = len(exports) if exports else 1
    body = merge(exports or [own], gw.metrics.traffic.clock())
    body["processes"] = processes
    return json_response(body)


def setup_traffic(app: web.Application) -> None:
    """Add the traffic route (behind the admin guard)."""
    app.router.add_get("/admin/api/traffic", guarded(traffic))
