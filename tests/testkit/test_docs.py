"""The cart test in docs/testing.md and in the README runs, and passes: what users copy works."""

from __future__ import annotations

import re

import pytest

from tests.support import REPO


@pytest.mark.parametrize("doc", ["docs/testing.md", "README.md"])
def test_the_documented_cart_test_passes(doc: str) -> None:
    path = REPO / doc
    blocks = [b for b in re.findall(r"```python\n(.*?)```", path.read_text(), re.DOTALL)
              if "statefun_workers.testing" in b]
    assert blocks, f"{doc} shows no test written with statefun_workers.testing"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(path), "exec"), namespace)  # noqa: S102 - our own document
    tests = [value for name, value in namespace.items() if name.startswith("test_") and callable(value)]
    assert len(tests) == 1
    tests[0]()
