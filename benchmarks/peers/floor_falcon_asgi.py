"""Peer: the HTTP floor, the same server stack as the candidate (gunicorn + uvicorn worker + Falcon ASGI)
answering fixed bytes after reading the body, with no protocol work at all.

Run from this folder: ``gunicorn -w 1 -k uvicorn_worker.UvicornWorker -b 127.0.0.1:PORT
floor_falcon_asgi:app``. The candidate cannot beat this; the gap to it is what decoding, the functions and
encoding cost.
"""

from __future__ import annotations

import falcon
import falcon.asgi

_ANSWER = b"\x00"


class Floor:
    """POST /statefun: read the whole body (as a real handler must), answer one fixed byte."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await req.stream.read()
        resp.content_type = "application/octet-stream"
        resp.data = _ANSWER


app = falcon.asgi.App()
app.add_route("/statefun", Floor())
