"""The core gives the same bytes on the oldest protobuf runtime it supports (3.20) as on the newest.

``make test`` builds ``.venv-protobuf-min``, a venv with only ``protobuf==3.20.3`` (the pure-Python backend on
Python 3.11+; STATEFUN_PROTOBUF_MIN_PYTHON may name another interpreter); the core imports nothing else, so it
runs from the checkout.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

SCRIPT = r'''
import json, sys
from datetime import timedelta
import statefun_workers as sf
from google.protobuf import __version__ as protobuf_version
from statefun_workers._proto.request_reply_pb2 import ToFunction, TypedValue

functions = sf.StatefulFunctions()
Cart = sf.make_json_type("com.example/Cart")

@functions.bind("test/all", specs=[sf.ValueSpec("n", sf.IntType), sf.ValueSpec("s", sf.StringType),
                                   sf.ValueSpec("c", Cart, expire_after_write=timedelta(days=1))])
def everything(context, message):
    context.storage.n = (context.storage.n or 0) + message.as_int()
    context.storage.s = "seen " + str(context.storage.n)
    cart = context.storage.c or {}
    cart[str(message.as_int())] = True
    context.storage.c = cart
    if message.as_int() % 3 == 0:
        del context.storage.s
    context.send(sf.message_builder(target_typename="test/other", target_id="x", long_value=1 << 40))
    context.send_after(timedelta(milliseconds=1500), sf.message_builder(
        target_typename="test/other", target_id="y", double_value=0.25), cancellation_token="t")
    context.cancel_delayed_message("t")
    context.send_egress(sf.kafka_egress_message(typename="e/kafka", topic="t", key="k", value=7))
    context.send_egress(sf.kinesis_egress_message(typename="e/kinesis", stream="s", partition_key="p",
                                                  value="v", explicit_hash_key="h"))

handler = sf.RequestReplyHandler(functions)
out = []
for k in range(20):
    request = ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "test", "all", f"id-{k}"
    if k % 4:
        batch.state.add(state_name="n").state_value.CopyFrom(
            TypedValue(typename="io.statefun.types/int", has_value=True, value=b"\x0d" + bytes([k, 0, 0, 0])))
        batch.state.add(state_name="s")
        batch.state.add(state_name="c")
    for j in range(k % 5):
        batch.invocations.add().argument.CopyFrom(
            TypedValue(typename="io.statefun.types/int", has_value=True, value=b"\x0d" + bytes([j, 0, 0, 0])))
    out.append(handler.handle_sync(request.SerializeToString()).hex())
print(json.dumps({"protobuf": protobuf_version, "responses": out}))
'''


def _run(python: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([python, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_oldest_supported_protobuf_gives_the_same_bytes():
    oldest = os.environ.get("STATEFUN_PROTOBUF_MIN_PYTHON", str(ROOT / ".venv-protobuf-min" / "bin" / "python"))
    assert os.path.exists(oldest), f"{oldest} is missing: make test builds the oldest protobuf's venv"
    old, new = _run(oldest), _run(sys.executable)
    assert old["protobuf"].startswith("3.20.")
    assert not new["protobuf"].startswith("3.")
    assert len(old["responses"]) == 20 and any(old["responses"])
    assert old["responses"] == new["responses"]
