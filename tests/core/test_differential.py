"""Differential tests: the official SDK (``statefun``) is the oracle for ``statefun_workers``.

For each generated (function, request) pair, the same function definition is bound with each implementation's
public API, the same request bytes are handled by the official ``RequestReplyHandler.handle_async`` and by ours
(``handle_async`` and ``handle_sync``), and the outcomes must match:

* both raise: the exception families match (ours wraps a user exception in ``FunctionError``, its ``__cause__``
  is compared), or
* both return: the ``FromFunction`` messages are equal once state mutations are sorted by name, the bytes are equal
  when the mutation order is the same (otherwise ours must be canonically encoded), and an empty response is an
  empty response;
* in both cases, what the function observed (state reads, message accessors, caller, errors raised by API calls)
  is the same.

Example counts keep this file under a minute on a shared 2-core machine.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from . import harness
from .harness import Sink, build_functions, compare_outcomes, official, request_text, run_coro, run_handler
from .strategies import OTHER_FUNCTION, cases, function_defs, requests

SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


def _official_outcome(fdefs, body):
    sink = Sink()
    functions = build_functions(official, fdefs[0], sink, extra=tuple(fdefs[1:]))
    handler = official.RequestReplyHandler(functions)
    return run_handler(lambda: run_coro(handler.handle_async(body)), sink)


def _check(fdefs, req):
    body = req.to_bytes()
    note("function definitions: " + repr(fdefs))
    note("request: " + request_text(body))
    expected = _official_outcome(fdefs, body)
    note(f"official: error={expected.error!r} response={harness.response_text(expected.response)}")

    sf = harness.ours
    sink = Sink()
    functions = build_functions(sf, fdefs[0], sink, extra=tuple(fdefs[1:]))
    handler = sf.RequestReplyHandler(functions)
    try:
        compare_outcomes(expected, run_handler(lambda: run_coro(handler.handle_async(body)), sink), "handle_async")
        compare_outcomes(expected, run_handler(lambda: handler.handle_sync(body), sink), "handle_sync")
        # the same handler again: nothing may leak from one request to the next
        compare_outcomes(expected, run_handler(lambda: run_coro(handler.handle_async(body)), sink),
                         "handle_async #2")
    finally:
        harness.release_ours_handler(handler)


@settings(max_examples=25, **SETTINGS)
@given(cases())
def test_oracle_is_deterministic(case):
    """The harness itself: two fresh official handlers give identical outcomes (else comparisons mean nothing)."""
    fdef, req = case
    body = req.to_bytes()
    note("request: " + request_text(body))
    compare_outcomes(_official_outcome((fdef,), body), _official_outcome((fdef,), body), "official twice")


@pytest.mark.slow
@settings(max_examples=800, **SETTINGS)
@given(cases())
def test_same_outcome_as_official(case):
    fdef, req = case
    _check((fdef,), req)


@st.composite
def two_function_cases(draw):
    first = draw(function_defs())
    second = draw(function_defs(typename=OTHER_FUNCTION))
    target = draw(st.sampled_from([first, second]))
    return (first, second), draw(requests(target, max_invocations=4))


@settings(max_examples=150, **SETTINGS)
@given(two_function_cases())
def test_dispatch_on_target_with_two_functions(case):
    fdefs, req = case
    _check(fdefs, req)
