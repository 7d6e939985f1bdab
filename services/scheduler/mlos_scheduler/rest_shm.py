"""Triton's shared-memory extension over KServe v2 REST: the routes tritonclient.http calls.

System shared memory uses the scheduler process's one `ShmRegistry`, the same object the gRPC
front door uses, so a region registered over either protocol serves requests over both. Paths
and bodies are Triton's:

- GET  /v2/systemsharedmemory[/region/{name}]/status -> `[{"name", "key", "offset", "byte_size"}]`
  (404 for an unknown name)
- POST /v2/systemsharedmemory/region/{name}/register with `{"key", "offset", "byte_size"}`
  (`offset` may be left out: 0; any other field is refused, so a typo is not silently ignored)
- POST /v2/systemsharedmemory[/region/{name}]/unregister (every region without a name; an
  unknown name is a no-op, as in Triton)

The cudasharedmemory routes answer 501 with the same reason as the gRPC front door.
Registry errors (hostile key, missing object, window past the object, duplicate name) are typed
MlosErrors, answered by rest.py's middleware like every other REST error.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mlos_common.errors import InvalidArgument
from mlos_common.shm import RegionInfo, ShmRegistry
from mlos_scheduler import rest_convert, shm_convert

SYSTEM = "/v2/systemsharedmemory"
CUDA = "/v2/cudasharedmemory"
REGISTER_FIELDS = ("key", "offset", "byte_size")


def register_args(body: dict[str, Any]) -> tuple[str, int, int]:
    """(key, offset, byte_size) from a register body, every field checked."""
    unknown = sorted(set(body) - set(REGISTER_FIELDS))
    if unknown:
        raise InvalidArgument(f"register body has unknown fields {unknown}; expected {list(REGISTER_FIELDS)}")
    if "key" not in body or "byte_size" not in body:
        raise InvalidArgument('register body needs "key" and "byte_size" (and optionally "offset")')
    key = rest_convert.json_str(body["key"], "register body: key")
    offset = rest_convert.json_size(body.get("offset", 0), "register body: offset")
    return key, offset, rest_convert.json_size(body["byte_size"], "register body: byte_size")


def region_json(info: RegionInfo) -> dict[str, Any]:
    return {"name": info.name, "key": info.key, "offset": info.offset, "byte_size": info.byte_size}


class ShmRoutes:
    """The shared memory routes over one registry."""

    def __init__(self, shm: ShmRegistry) -> None:
        self._shm = shm

    def routes(self) -> list[web.RouteDef]:
        get, post, region = web.get, web.post, "/region/{region}"
        table = [
            get(f"{SYSTEM}/status", self.status),
            get(f"{SYSTEM}{region}/status", self.status),
            post(f"{SYSTEM}{region}/register", self.register),
            post(f"{SYSTEM}/unregister", self.unregister),
            post(f"{SYSTEM}{region}/unregister", self.unregister),
        ]
        for path in ("/status", f"{region}/status"):
            table.append(get(f"{CUDA}{path}", self.cuda))
        for path in (f"{region}/register", "/unregister", f"{region}/unregister"):
            table.append(post(f"{CUDA}{path}", self.cuda))
        return table

    async def status(self, request: web.Request) -> web.Response:
        regions = self._shm.status(request.match_info.get("region", ""))
        return web.json_response([region_json(r) for r in regions])

    async def register(self, request: web.Request) -> web.Response:
        body = rest_convert.body_object(await request.read())
        key, offset, byte_size = register_args(body)
        self._shm.register(request.match_info["region"], key, offset, byte_size)
        return web.Response(status=200)

    async def unregister(self, request: web.Request) -> web.Response:
        rest_convert.body_object(await request.read())  # tritonclient sends an empty body; anything else must be JSON
        self._shm.unregister(request.match_info.get("region", ""))
        return web.Response(status=200)

    async def cuda(self, request: web.Request) -> web.Response:
        raise shm_convert.cuda_unsupported()
