#!/usr/bin/env bash
# Build the minimal Python image the docker sandbox runs tools in, and import it into podman.
#
# No image registry is reachable from these machines, so the image is assembled from Debian's own
# packages (which apt can fetch): the interpreter, its standard library and the shared libraries they
# load. No shell, no package manager, no pip: a tool gets the Python standard library and nothing else.
#
# Idempotent: does nothing if the image already exists. Usage: scripts/sandbox-image.sh [IMAGE]
# (default: $MNEMO_SANDBOX_IMAGE or mnemo-sandbox:py311). Needs podman and apt-get.
set -euo pipefail

IMAGE="${1:-${MNEMO_SANDBOX_IMAGE:-mnemo-sandbox:py311}}"

if ! command -v podman >/dev/null 2>&1; then
    echo "sandbox-image: podman is not installed (apt-get install podman runc)" >&2
    exit 1
fi
if podman image exists "$IMAGE"; then
    echo "sandbox-image: $IMAGE already exists"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "sandbox-image: apt-get is needed to fetch the Debian packages the image is built from" >&2
    exit 1
fi

# python3.11-minimal + libpython3.11-minimal give the interpreter and the core modules; json, asyncio
# and the rest of the standard library are in libpython3.11-stdlib, whose C extensions need the small
# libraries listed after it. curses, readline and dbm's libraries are left out on purpose.
PACKAGES=(
    libc6 libgcc-s1 zlib1g libexpat1 libssl3
    python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
    libffi8 libbz2-1.0 liblzma5 libuuid1 libsqlite3-0 libcrypt1
)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mnemo-sandbox-image.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/rootfs"
mkdir -p "$WORK/debs" "$ROOT"

# apt drops privileges to _apt for downloads: let it reach and write the download directory.
chmod 0755 "$WORK"
chmod 0777 "$WORK/debs"
(cd "$WORK/debs" && apt-get download -qq "${PACKAGES[@]}")
for deb in "$WORK"/debs/*.deb; do
    dpkg -x "$deb" "$ROOT"
done

# Debian's libc6 ships the loader under /lib/x86_64-linux-gnu; ELF binaries ask for /lib64's path.
mkdir -p "$ROOT/lib64"
ln -sf ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$ROOT/lib64/ld-linux-x86-64.so.2"
ln -sf python3.11 "$ROOT/usr/bin/python3"
# The tool runs as nobody (65534); a passwd entry keeps getpass/pwd lookups from failing.
mkdir -p "$ROOT/etc" "$ROOT/tmp" "$ROOT/sandbox"
chmod 1777 "$ROOT/tmp"
printf 'root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOT/etc/group"
# Documentation and the test suite are dead weight in a sandbox.
rm -rf "$ROOT/usr/share/doc" "$ROOT/usr/share/man" "$ROOT/usr/share/lintian" "$ROOT/usr/lib/python3.11/test"

# Debian compiles the standard library at install time (py3compile); without .pyc files every
# container would recompile what it imports (~0.3 s per tool call on a read-only root).
if ! chroot "$ROOT" /usr/bin/python3.11 -m compileall -q /usr/lib/python3.11 >/dev/null 2>&1; then
    echo "sandbox-image: could not precompile the standard library (needs root for chroot); tools start slower" >&2
fi

tar -C "$ROOT" -c . | podman import --quiet \
    --change 'CMD ["/usr/bin/python3.11"]' \
    --change 'WORKDIR /tmp' \
    --message "Mnemo tool sandbox: Debian python3.11 standard library only" \
    - "$IMAGE" >/dev/null
echo "sandbox-image: built $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
