"""The test in docs/testing.md runs, and passes: what users copy works."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def test_the_documented_cart_test_passes() -> None:
    first = re.search(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert first is not None
    namespace: dict[str, object] = {}
    exec(compile(first.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - our own document
    tests = [value for name, value in namespace.items() if name.startswith("test_") and callable(value)]
    assert len(tests) == 1
    tests[0]()
