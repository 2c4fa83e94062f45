#!/bin/bash
# Make the two base images the Dockerfile builds on, locally, from Debian packages (debootstrap + podman import),
# for machines that reach Debian's package mirror but no container registry. Prints the two image names:
#
#   read -r BUILD_IMAGE RUNTIME_IMAGE < <(scripts/debian-base-images.sh)
#   podman build --build-arg BUILD_IMAGE=$BUILD_IMAGE --build-arg RUNTIME_IMAGE=$RUNTIME_IMAGE ...
#
# The images stay in podman's store under a tag that names the suite and a hash of the package lists, so a
# second run (and the test suite's every run after the first) reuses them at once. A cold run downloads about
# 100 MB of packages. Needs root, debootstrap and podman (scripts/install-system-deps.sh installs them).
# Both images carry Debian's own Python at /usr/bin/python3: the build stage's virtualenv points at it.
set -euo pipefail
suite=${STATEFUN_DEBIAN_SUITE:-bookworm}
# build: a compiler and Python's headers for mypyc, ca-certificates for pip; runtime: the interpreter alone.
build_packages=python3,python3-venv,python3-dev,gcc,libc6-dev,ca-certificates
runtime_packages=python3
recipe=$(printf '%s\n' "$suite" "$build_packages" "$runtime_packages" | sha256sum | cut -c1-12)
podman=(podman --runtime "${STATEFUN_PODMAN_RUNTIME:-runc}")

make_image() {  # name packages
  local name=$1 packages=$2 root
  if "${podman[@]}" image exists "$name"; then
    return
  fi
  root=$(mktemp -d "${TMPDIR:-/tmp}/statefun-debootstrap.XXXXXX")
  trap 'rm -rf "$root"' RETURN
  echo "debootstrap $suite ($packages) for $name" >&2
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" >&2
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" --numeric-owner -c . \
    | "${podman[@]}" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$name" >&2
}

build_image=localhost/statefun-workers-base:build-$suite-$recipe
runtime_image=localhost/statefun-workers-base:runtime-$suite-$recipe
make_image "$build_image" "$build_packages"
make_image "$runtime_image" "$runtime_packages"
echo "$build_image $runtime_image"
