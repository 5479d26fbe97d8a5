#!/bin/sh
# `make run`: initialise ./var, apply the example inventory, show the plan,
# rotate what is due and print the status table. Safe to run again.
set -eu
REKEY=${1:-./rekey}
CFG=contrib/examples/rekey.yaml
"$REKEY" -c "$CFG" init
"$REKEY" -c "$CFG" apply -f contrib/examples/inventory.yaml
echo
"$REKEY" -c "$CFG" plan
echo
"$REKEY" -c "$CFG" --log-level warn rotate --due || rc=$?
echo
"$REKEY" -c "$CFG" status
echo
echo "State is in ./var. Try: $REKEY -c $CFG history payments/api-key"
echo "                        $REKEY -c $CFG audit verify"
exit "${rc:-0}"
