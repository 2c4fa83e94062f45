"""pytest plugin (entry point ``pytest11``): a failed test's output shows the trace of each testing.Flow it used.

Installed with the package and loaded by pytest on its own; it only reads the flows' traces.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from . import testing

_STARTED = pytest.StashKey[int]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, None]:
    item.stash[_STARTED] = testing._EVENTS[0]
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    started = item.stash.get(_STARTED, 0)
    flows = sorted((f for f in list(testing._FLOWS) if f._last_event > started), key=lambda f: f._serial)
    for number, flow in enumerate(flows, 1):
        title = "statefun flow trace" + (f" ({number} of {len(flows)})" if len(flows) > 1 else "")
        report.sections.append((title, flow.trace))
