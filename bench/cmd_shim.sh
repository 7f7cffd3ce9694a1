#!/bin/sh
# Logs a system command of the charm to $FAKE_JUJU/commands.log, then runs the real one.
echo "${0##*/} $*" >> "$FAKE_JUJU/commands.log"
PATH=$REAL_PATH exec "${0##*/}" "$@"
