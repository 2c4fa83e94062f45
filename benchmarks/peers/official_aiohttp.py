"""Peer: the official Python SDK served the way its playground does, aiohttp + ``handle_async``.

Run: ``python official_aiohttp.py PORT`` from this folder, in an environment with ``flink-statefun`` and
``aiohttp``. One process, asyncio's default loop, no access log: the setup a user copies from the docs.
"""

from __future__ import annotations

import sys

import statefun
import workload
from aiohttp import web

handler = statefun.RequestReplyHandler(workload.build(statefun))


async def serve(request: web.Request) -> web.Response:
    """Hand the raw ToFunction bytes to the SDK and answer its FromFunction bytes."""
    answer = await handler.handle_async(await request.read())
    return web.Response(body=answer, content_type="application/octet-stream")


def main() -> None:
    app = web.Application()
    app.router.add_post("/statefun", serve)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
