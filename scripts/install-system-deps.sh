#!/bin/bash
# Install the system programs the test suite runs for real (Debian packages), only where they are missing.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
# The TLS tests make their certificates with scripts/make-certs.sh.
command -v openssl >/dev/null || need+=(openssl)
# protoc 3.21 regenerates statefun_workers/_proto; the drift test runs it (scripts/gen_protos.py also takes
# $STATEFUN_PROTOC, or grpcio-tools 1.49 on Python <= 3.11)
"${STATEFUN_PROTOC:-protoc}" --version 2>/dev/null | grep -q '^libprotoc 3\.21\.' || need+=(protobuf-compiler)
# Java 17 and Maven build and run the local StateFun runner (runtime/) that tests/runtime drives.
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${need[*]}: run 'sudo apt-get install ${need[*]}' (the tests run prometheus, promtool," \
      "protoc 3.21, Java 17 and Maven, as in Debian 12)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
