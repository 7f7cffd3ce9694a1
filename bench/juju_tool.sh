#!/bin/sh
# A fake Juju hook tool for the hooks benchmark (symlinked as config-get, relation-get, ...).
# Shell, not Python: a real hook tool costs a few ms, and a Python fake would cost ~20 ms
# per call and hide the charm's own time. Every call is logged to $FAKE_JUJU/calls.log.
tool=${0##*/}
echo "$tool $*" >> "$FAKE_JUJU/calls.log"
case "$tool" in
config-get) cat "$FAKE_JUJU/config.json" ;;
is-leader) echo true ;;
network-get) cat "$FAKE_JUJU/network.json" ;;
status-get) echo '{"status": "unknown", "message": "", "status-data": {}}' ;;
relation-ids)
    for arg in "$@"; do
        case "$arg" in --*) ;; *) name=$arg ;; esac
    done
    if [ -f "$FAKE_JUJU/ids-$name.json" ]; then cat "$FAKE_JUJU/ids-$name.json"; else echo '[]'; fi ;;
relation-list)
    while [ $# -gt 0 ]; do
        case "$1" in -r) rid=${2##*:}; shift ;; esac
        shift
    done
    cat "$FAKE_JUJU/list-$rid.json" ;;
relation-get)
    while [ $# -gt 0 ]; do
        case "$1" in -r) rid=${2##*:}; shift ;; --format=json|--app|-) ;; *) target=$1 ;; esac
        shift
    done
    case "$target" in */*) target="${target%/*}-${target##*/}" ;; esac
    if [ -f "$FAKE_JUJU/rel-$rid-$target.json" ]; then cat "$FAKE_JUJU/rel-$rid-$target.json"; else echo '{}'; fi ;;
relation-set) exec "$FAKE_JUJU_PYTHON" "$FAKE_JUJU/relation_set.py" "$@" ;;
*) ;;  # juju-log, status-set, application-version-set, action-*: accepted, logged
esac
