"""Talk to a running pool the way the StateFun runtime does, to see the protocol at work.

Usage (with `make serve` running): .venv/bin/python examples/try_greeter.py [NAME] [--url URL]
(the URL defaults to the pool `make serve` starts: port $PORT, else 8000)

It POSTs a ToFunction for example/greeter without any state (the pool answers IncompleteInvocationContext:
"register state `seen` first"), then the same batch with the state attached, as the runtime would re-send it,
and prints both answers. NAME defaults to Alice. Every run greets a first visit: the pool keeps no state (the
runtime sends each address's state with its batch and stores the mutations it gets back), and this script
always sends the state registered but empty.
"""

from __future__ import annotations

import argparse
import http.client
import os
import urllib.parse

from statefun_workers.request_reply_pb2 import FromFunction, ToFunction, TypedValue
from statefun_workers.types_pb2 import StringWrapper


def greet_request(name: str, with_state: bool) -> bytes:
    request = ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "example", "greeter", name
    if with_state:
        batch.state.add(state_name="seen")  # registered, no value yet: the runtime sends the name only
    argument = TypedValue(typename="io.statefun.types/string", has_value=True,
                          value=StringWrapper(value=name).SerializeToString())
    batch.invocations.add(argument=argument)
    return request.SerializeToString()


def post(url: str, body: bytes) -> FromFunction:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
    try:
        connection.request("POST", parts.path or "/", body=body,
                           headers={"Content-Type": "application/octet-stream"})
    except ConnectionRefusedError:
        raise SystemExit(f"nothing answers at {url}: start the pool with `make serve` (or pass --url)") from None
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"{response.status}: {data.decode(errors='replace')}")
    return FromFunction.FromString(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="Alice")
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT') or 8000}/statefun")
    args = parser.parse_args()
    print("--- without state ---")
    print(post(args.url, greet_request(args.name, with_state=False)))
    print("--- with the state registered ---")
    print(post(args.url, greet_request(args.name, with_state=True)))


if __name__ == "__main__":
    main()
