#!/usr/bin/env bash
# Serve the Docker Engine API from podman on a unix socket, so the `docker` SDK works without Docker.
#
# Usage: scripts/podman-service.sh DIR  → prints the socket URL (unix://DIR/podman.sock) on stdout.
# Idempotent: if a service already answers on DIR/podman.sock, it is reused. The service runs in the
# background until killed (its PID is in DIR/podman.pid; `kill "$(cat DIR/podman.pid)"` stops it).
#
# podman's default runtime (crun) rejects these machines' hybrid cgroups, and containers may not raise
# rlimits above the host's, so the service runs with its own containers.conf: runc, and ulimits that
# every container can have.
set -euo pipefail

DIR="${1:?usage: podman-service.sh DIR}"
for bin in podman runc; do
    if ! command -v "$bin" >/dev/null 2>&1; then
        echo "podman-service: $bin is not installed (apt-get install podman runc)" >&2
        exit 1
    fi
done

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
SOCK="$DIR/podman.sock"
URL="unix://$SOCK"
CONF="$DIR/containers.conf"

ping() {
    # /_ping is the Docker API's health check; podman answers "OK".
    [ -S "$SOCK" ] && [ "$(curl -s --max-time 2 --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" = "OK" ]
}

if ping; then
    echo "$URL"
    exit 0
fi

# podman's default seccomp profile lets any process create namespaces (unshare, clone with
# CLONE_NEW*): a tool could make its own user namespace, a large kernel attack surface. Docker's
# default profile refuses that without CAP_SYS_ADMIN; this derived profile does the same.
SECCOMP="$DIR/seccomp.json"
BASE_PROFILE="${MNEMO_SECCOMP_BASE:-/usr/share/containers/seccomp.json}"
if [ ! -r "$BASE_PROFILE" ]; then
    echo "podman-service: $BASE_PROFILE (podman's default seccomp profile) is missing" >&2
    exit 1
fi
python3 - "$BASE_PROFILE" "$SECCOMP" <<'PY'
import json
import sys

NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
BLOCKED = {"unshare", "clone", "clone3", "setns"}
profile = json.load(open(sys.argv[1]))
for rule in profile["syscalls"]:
    if rule.get("action") == "SCMP_ACT_ALLOW":
        rule["names"] = [n for n in rule["names"] if n not in BLOCKED]
profile["syscalls"] = [r for r in profile["syscalls"] if r["names"]]
profile["syscalls"] += [
    {"names": ["unshare", "setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
    # ENOSYS makes glibc fall back to clone(), whose flags seccomp can inspect.
    {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    {
        "names": ["clone"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
    },
]
json.dump(profile, open(sys.argv[2], "w"))
PY

cat >"$CONF" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
seccomp_profile = "$SECCOMP"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

rm -f "$SOCK"
# From its own directory: conmon drops files (e.g. "oom" after an out-of-memory kill) in its cwd.
cd "$DIR"
CONTAINERS_CONF="$CONF" setsid podman system service --time=0 "$URL" \
    </dev/null >>"$DIR/podman.log" 2>&1 &
echo $! >"$DIR/podman.pid"

for _ in $(seq 1 100); do
    if ping; then
        echo "$URL"
        exit 0
    fi
    if ! kill -0 "$(cat "$DIR/podman.pid")" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
echo "podman-service: the service did not answer on $SOCK; see $DIR/podman.log:" >&2
tail -n 20 "$DIR/podman.log" >&2 || true
exit 1
