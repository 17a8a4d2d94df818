#!/bin/sh
# One-shot, once the Temporal server is up: waits until the cluster serves, makes sure Mnemo's
# namespace exists and registers Mnemo's custom search attributes in it. Safe to re-run: each
# step is a no-op when its work is already done.
#
# TEMPORAL_ADDRESS      host:port of the frontend (required)
# TEMPORAL_NAMESPACE    namespace Mnemo runs in (default: default)
# TEMPORAL_NAMESPACE_RETENTION  how long closed workflow histories are kept (default: 7d)
# SEARCH_ATTRIBUTES     space-separated Name=Type pairs, e.g. "AgentId=Keyword RunStatus=Keyword"
# TEMPORAL_INIT_ATTEMPTS  tries, 2 s apart, while the cluster or a new namespace is not ready (60)
set -eu

address="${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS must be set}"
namespace="${TEMPORAL_NAMESPACE:-default}"
retention="${TEMPORAL_NAMESPACE_RETENTION:-7d}"
attributes="${SEARCH_ATTRIBUTES:?SEARCH_ATTRIBUTES must be set}"
attempts="${TEMPORAL_INIT_ATTEMPTS:-60}"

# Runs a command until it succeeds; the last try runs with its output shown, so a failure says why.
retry() {
    tries=1
    until "$@" >/dev/null 2>&1; do
        if [ "$tries" -ge "$attempts" ]; then
            "$@"
            return 1
        fi
        tries=$((tries + 1))
        sleep 2
    done
}

echo "waiting for the Temporal cluster at ${address}"
retry temporal operator cluster health --address "$address"

if ! temporal operator namespace describe --namespace "$namespace" --address "$address" >/dev/null 2>&1; then
    echo "creating namespace ${namespace} (retention ${retention})"
    # A concurrent run may have created it meanwhile: that is fine as long as it exists now.
    temporal operator namespace create --namespace "$namespace" --retention "$retention" --address "$address" \
        || temporal operator namespace describe --namespace "$namespace" --address "$address" >/dev/null
fi

# A new namespace reaches the frontend's namespace cache a few seconds after it is created.
retry temporal operator search-attribute list --namespace "$namespace" --address "$address"

set --
for pair in $attributes; do
    case "$pair" in
        ?*=?*) set -- "$@" --name "${pair%%=*}" --type "${pair#*=}" ;;
        *) echo "SEARCH_ATTRIBUTES: '${pair}' is not Name=Type" >&2; exit 2 ;;
    esac
done
# Creating an attribute that exists with the same type succeeds; a clash of types or a name the
# server reserves fails here, loudly, and the services that depend on this job do not start.
temporal operator search-attribute create --namespace "$namespace" --address "$address" "$@"
echo "namespace ${namespace} is ready: ${attributes}"
