#!/bin/sh
# `make run`: initialise ./var, apply the example inventory, show the status,
# then run the daemon (`rekey serve`) in the foreground on the example config:
# it rotates what is due, serves the API, the metrics and the status page,
# and takes a backup every hour. Ctrl-C stops it cleanly. Safe to run again.
set -eu
REKEY=${1:-./rekey}
CFG=${REKEY_DEMO_CONFIG:-contrib/examples/rekey.yaml}
"$REKEY" -c "$CFG" init
"$REKEY" -c "$CFG" apply -f contrib/examples/inventory.yaml
echo
"$REKEY" -c "$CFG" status
listen=$(sed -n 's/^server: *{ *listen: *"\([^"]*\)".*/\1/p' "$CFG")
state=$(sed -n 's/^state_dir: *//p' "$CFG")
cat <<EOM

Starting the daemon (rekey serve) on $CFG; Ctrl-C stops it.
  status page  http://$listen/          (from this machine, no token needed)
  metrics      http://$listen/metrics
  health       http://$listen/healthz   http://$listen/readyz
  API          http://$listen/v1/status  with  -H "Authorization: Bearer \$(cat $state/api.token)"
  token file   $state/api.token (made at the first start, 0600)
In another terminal: $REKEY -c $CFG status   |   $REKEY -c $CFG runs   |   $REKEY -c $CFG audit verify

EOM
exec "$REKEY" -c "$CFG" serve
