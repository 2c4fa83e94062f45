"""Nesting: the reader refuses groups nested past protobuf's bound, at the same depth protobuf does, without
recursing (a recursive reader overflowed the C stack of a compiled worker on 50,000 nested groups, SIGSEGV, and
accepted 101-40,000 levels that protobuf refuses)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from google.protobuf.internal import api_implementation

from fuzz.builds import ROOT
from fuzz.make_corpus import POSITIONS, groups
from fuzz.oracle import REFUSED, check_handler, check_readers, protobufs
from statefun_workers import RequestReplyHandler
from statefun_workers._read import MAX_DEPTH, read_to_function, read_with_protobuf
from statefun_workers.errors import MalformedRequestError

SEGV_GROUPS = 50_000
"""The issue's body: b'\\x2b' * 50000 + b'\\x2c' * 50000, 100 KB of nested groups."""

READERS = [read_to_function, read_with_protobuf]


def test_protobuf_backend_is_upb():
    """The bound follows upb's (the default backend); the python backend counts differently (docs/fuzzing.md)."""
    assert api_implementation.Type() == "upb"


@pytest.mark.parametrize("where", POSITIONS)
def test_the_deepest_nesting_protobuf_accepts_is_accepted_and_one_more_refused(where):
    depth, wrap = POSITIONS[where]
    deepest = wrap(groups(MAX_DEPTH - depth))
    assert check_readers(deepest, READERS) != REFUSED
    too_deep = wrap(groups(MAX_DEPTH - depth + 1))
    assert check_readers(too_deep, READERS) == REFUSED
    with pytest.raises(ValueError, match=f"nested more than {MAX_DEPTH} deep"):
        read_to_function(too_deep)


@pytest.mark.parametrize("where", POSITIONS)
def test_the_segv_body_is_refused_in_every_position(where):
    body = POSITIONS[where][1](groups(SEGV_GROUPS))
    assert protobufs(body) == REFUSED
    with pytest.raises(ValueError, match="nested more than 100 deep"):
        read_to_function(body)
    with pytest.raises(ValueError):
        read_with_protobuf(body)


def test_nesting_is_counted_across_group_numbers_and_inner_fields():
    """Groups of different numbers, with a field in each, nest as deep as groups of one number."""
    def nested(depth: int) -> bytes:
        numbers = [1 + i % 15 for i in range(depth)]
        opens = b"".join(bytes([n << 3 | 3]) + b"\x08\x01" for n in numbers)
        return opens + b"".join(bytes([n << 3 | 4]) for n in reversed(numbers))

    assert check_readers(nested(MAX_DEPTH), READERS) != REFUSED
    assert check_readers(nested(MAX_DEPTH + 1), READERS) == REFUSED


def test_sibling_groups_do_not_add_up():
    """Depth, not count: many groups side by side, each shallow, are fine."""
    body = groups(MAX_DEPTH) * 200
    assert check_readers(body, READERS) != REFUSED


def test_the_handler_answers_malformed_request_naming_the_nesting():
    from examples import functions

    handler = RequestReplyHandler(functions)
    body = POSITIONS["state-value"][1](groups(SEGV_GROUPS))
    with pytest.raises(MalformedRequestError, match="nested more than 100 deep") as refused:
        handler.handle_sync(body)
    assert refused.value.status == 400
    check_handler(handler, body)


SCRIPT = r"""
import json, sys
from fuzz import builds
builds.select(sys.argv[1])
builds.check(sys.argv[1])
from examples import functions
from fuzz.make_corpus import POSITIONS, groups
from statefun_workers import RequestReplyHandler
from statefun_workers._read import read, read_to_function
from statefun_workers.errors import MalformedRequestError
handler = RequestReplyHandler(functions)
out = {}
for where, (_, wrap) in POSITIONS.items():
    body = wrap(groups(int(sys.argv[2])))
    seen = []
    for reader in (read, read_to_function):
        try:
            reader(body)
            seen.append("accepted")
        except ValueError as ex:
            seen.append(str(ex))
    try:
        handler.handle_sync(body)
        seen.append("answered")
    except MalformedRequestError as ex:
        seen.append(f"{ex.status} {ex}")
    out[where] = seen
print(json.dumps(out))
"""


@pytest.mark.parametrize("build", ["compiled", "pure"])
def test_both_builds_refuse_the_segv_body_in_every_position(build):
    """In a child process, so that a crash is a failed test rather than a dead test run."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, build, str(SEGV_GROUPS)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    out = json.loads(done.stdout)
    assert set(out) == set(POSITIONS)
    for where, (read, own, handled) in out.items():
        assert read != "accepted" and own != "accepted", where
        assert "nested more than 100 deep" in own, (where, own)
        assert handled.startswith("400 the request body is not a ToFunction"), (where, handled)
