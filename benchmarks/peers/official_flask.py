"""Peer: the official Python SDK served the way its README does, Flask + ``handle_sync``.

Run under gunicorn's default (sync) worker from this folder: ``gunicorn -w 1 -b 127.0.0.1:PORT
official_flask:app``. The sync worker closes the connection after each response, as it does for users.
"""

from __future__ import annotations

import statefun
import workload
from flask import Flask, Response, request

handler = statefun.RequestReplyHandler(workload.build(statefun))
app = Flask(__name__)


@app.post("/statefun")
def serve() -> Response:
    """Hand the raw ToFunction bytes to the SDK and answer its FromFunction bytes."""
    return Response(handler.handle_sync(request.get_data()), content_type="application/octet-stream")
