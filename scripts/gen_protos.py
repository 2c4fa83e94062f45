"""Regenerate statefun_workers/_proto/*_pb2.py(i) from protos/*.proto, or check that they have not drifted.

Usage: python scripts/gen_protos.py [--check]

Needs a protoc of the 3.21 series: Debian 12's `protobuf-compiler` (3.21.12, installed by
`make system-deps`), or the one inside grpcio-tools 1.49 (3.21.6); both write the same bytes. That old protoc is
deliberate: its gencode runs on every protobuf runtime from 3.20 to today's, while newer gencode insists on a
runtime at least as new as itself. The generated modules are rewritten to register their descriptors in a pool
of their own (statefun_workers._proto._pool), so they never clash with the official SDK's modules, which put the
same message names into protobuf's default pool.
"""

from __future__ import annotations

import argparse
import difflib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "statefun_workers" / "_proto"
PACKAGE = "statefun_workers._proto"
HEADER = "# Generated from protos/ by scripts/gen_protos.py (protoc 3.21). DO NOT EDIT.\n"
PROTOC_SERIES = "libprotoc 3.21."


def protoc_command() -> list[str]:
    """A protoc of the 3.21 series: $STATEFUN_PROTOC, or `protoc` on PATH, or grpcio-tools' own."""
    binary = os.environ.get("STATEFUN_PROTOC") or shutil.which("protoc")
    if binary:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
        if version.startswith(PROTOC_SERIES):
            return [binary]
        print(f"ignoring {binary}: {version!r} is not of the 3.21 series", file=sys.stderr)
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        raise SystemExit("no protoc 3.21 found: install Debian's protobuf-compiler (make system-deps), "
                         "or grpcio-tools==1.49.1 on Python <= 3.11") from None
    return [sys.executable, "-m", "grpc_tools.protoc"]


def _rewrite(name: str, text: str) -> str:
    """Point one generated module at the package's private descriptor pool and full module name."""
    if name.endswith(".py"):
        module = name[: -len(".py")]
        text = text.replace(
            "from google.protobuf import descriptor_pool as _descriptor_pool\n",
            f"from {PACKAGE}._pool import POOL as _POOL\n",
        )
        text = text.replace("_descriptor_pool.Default()", "_POOL")
        text = text.replace(f"'{module}'", f"'{PACKAGE}.{module}'")
        if "_POOL" not in text or f"'{PACKAGE}.{module}'" not in text:
            raise SystemExit(f"unexpected protoc output for {name}: the rewrite did not apply")
    return HEADER + text


def generate() -> dict[str, str]:
    """Run protoc over protos/ and return {file name: rewritten content}."""
    sources = sorted(p.name for p in PROTOS.glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [*protoc_command(), f"-I{PROTOS}", f"--python_out={tmp}", f"--pyi_out={tmp}", *sources],
            check=True, cwd=PROTOS,
        )
        return {p.name: _rewrite(p.name, p.read_text()) for p in sorted(pathlib.Path(tmp).iterdir())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the checked-in modules differ")
    args = parser.parse_args()
    generated = generate()
    if args.check:
        drift = []
        for name, text in generated.items():
            path = OUT / name
            current = path.read_text() if path.exists() else ""
            if current != text:
                drift.append("".join(difflib.unified_diff(
                    current.splitlines(True), text.splitlines(True), f"checked-in/{name}", f"protos/{name}")))
        stale = sorted(
            p.name for p in OUT.glob("*_pb2.py*") if p.name not in generated
        )
        drift.extend(f"{name} has no .proto in protos/\n" for name in stale)
        if drift:
            sys.stdout.write("".join(drift))
            print("generated modules drifted from protos/: run `make protos`", file=sys.stderr)
            return 1
        print(f"{len(generated)} generated modules match protos/")
        return 0
    for name, text in generated.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(generated)} modules to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
