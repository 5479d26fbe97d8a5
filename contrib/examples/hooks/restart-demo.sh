#!/bin/sh
# A stand-in for `systemctl try-restart`: rekey runs it (argv, no shell, no
# secret in its environment or arguments) after the secrets it depends on
# are promoted.
echo "restarting $1 after rotation of: ${REKEY_SECRETS:-?} (run ${REKEY_RUN_ID:-?})" >&2
