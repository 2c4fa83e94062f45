"""Fuzz the request reader or the whole handler with atheris (libFuzzer); docs/fuzzing.md says how and why.

Usage: python -m fuzz.run {reader,handler} {compiled,pure} [libFuzzer arguments: corpus dirs, -runs=N, ...]

Each input goes to every reader of ``statefun_workers._read`` (and, for ``handler``, through
``RequestReplyHandler.handle_sync`` with the example functions); fuzz/oracle.py holds each outcome to protobuf's
parser. A disagreement or an undocumented exception is a finding: atheris prints it, saves the input as a
``crash-*`` file and exits non-zero. So does a crash of the compiled code (libFuzzer catches the signal).

Coverage: atheris instruments Python bytecode. The pure-Python build is instrumented whole. In the compiled build
the mypyc modules are C and carry no instrumentation, so the source of ``_read.py`` also runs on every input as
a twin (instrumented, and a third opinion): its branches are the compiled reader's branches, and they guide the
mutations; the handler's uncompiled modules and the examples are instrumented as imported.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from . import builds

TARGETS = ("reader", "handler")


def _source_twin(atheris: Any) -> Callable[[bytes], Any]:
    """``read_to_function`` from _read.py's source, loaded beside the compiled module and instrumented."""
    spec = importlib.util.spec_from_file_location("statefun_workers._read_source",
                                                  builds.ROOT / "statefun_workers" / "_read.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, value in list(vars(module).items()):
        if getattr(value, "__module__", None) != module.__name__:
            continue
        if isinstance(value, type):
            for attribute, method in list(vars(value).items()):
                if callable(method) and hasattr(method, "__code__"):
                    setattr(value, attribute, atheris.instrument_func(method))
        elif hasattr(value, "__code__"):
            setattr(module, name, atheris.instrument_func(value))
    reader: Callable[[bytes], Any] = module.read_to_function
    return reader


def one_input(target: str, build: str, atheris: Any) -> Callable[[bytes], None]:
    """The function atheris calls with each input."""
    with atheris.instrument_imports(include=["statefun_workers", "examples"]):
        import examples
        from statefun_workers import RequestReplyHandler
        from statefun_workers._read import read_to_function, read_with_protobuf
    builds.check(build)
    from .oracle import check_handler, check_readers

    readers: list[Callable[[bytes], Any]] = [read_to_function, read_with_protobuf]
    if build == "compiled":
        readers.append(_source_twin(atheris))
    handler = RequestReplyHandler(examples.functions)

    def test_one_input(data: bytes) -> None:
        expected = check_readers(data, readers)
        if target == "handler":
            check_handler(handler, data, expected)

    return test_one_input


def fuzz(target: str, build: str, libfuzzer_argv: list[str]) -> None:
    """Fuzz ``target`` on ``build`` (already selected) until libFuzzer's arguments say stop; exit."""
    import atheris  # type: ignore[import-untyped]

    atheris.Setup(libfuzzer_argv, one_input(target, build, atheris))
    atheris.Fuzz()


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] not in TARGETS:
        sys.exit(__doc__.splitlines()[2])
    builds.select(argv[2])
    fuzz(argv[1], argv[2], [argv[0], *argv[3:]])


if __name__ == "__main__":
    main(sys.argv)
