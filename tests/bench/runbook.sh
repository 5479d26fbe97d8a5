#!/bin/sh
# The emergency as an operator scripts it today, against the same test
# doubles: per secret, generate a value and write it with the provider's own
# client (curl to Vault, the AWS CLI to Secrets Manager, `kubectl patch` of a
# Kubernetes Secret, a file for a local secret), then one
# `kubectl rollout restart` per workload. No reads, no verification, no
# journal, no retries: the cheapest script that does the job.
#
#   runbook.sh one KIND ARG...      one item
#   runbook.sh seq < ITEMS          every line of ITEMS ("KIND ARG..."), in order
#   xargs -P 8 -L 1 sh runbook.sh one < ITEMS      the same, 8 at once
#
# KIND and ARGs:
#   local PATH               a file under $RB_LOCAL_DIR (written to a temp file, renamed)
#   vault PATH               POST $VAULT_ADDR/v1/secret/data/PATH {"data":{"password":...}}
#                            with X-Vault-Token from $VAULT_TOKEN_FILE
#   aws SECRET_ID            aws --endpoint-url $RB_AWS_ENDPOINT secretsmanager put-secret-value
#                            (or, without the AWS CLI, $RB_AWS_SIGNER: a SigV4 signer script)
#   k8s NAMESPACE SECRET     kubectl patch secret SECRET -n NAMESPACE --type merge (key "password")
#   restart NAMESPACE NAME   kubectl rollout restart deployment/NAME -n NAMESPACE
# Environment: KUBECONFIG, AWS_* credentials and region, RB_* above, RB_AWS
# (the aws binary), RB_KUBECTL (default kubectl).
# Exit status: that of the failing client (1 if a value could not be made).
set -eu

gen() { # a 32-character value, base64 of random bytes (no newline)
	head -c 24 /dev/urandom | base64 | tr -d '\n'
}

one() {
	kind=$1; shift
	case $kind in
	local)
		v=$(gen)
		mkdir -p "$RB_LOCAL_DIR/$(dirname "$1")"
		f="$RB_LOCAL_DIR/$1"
		umask 077
		printf %s "$v" >"$f.tmp"
		mv "$f.tmp" "$f"
		;;
	vault)
		v=$(gen)
		printf '{"data":{"password":"%s"}}' "$v" |
			curl -sS -f -o /dev/null -X POST -H "X-Vault-Token: $(cat "$VAULT_TOKEN_FILE")" \
				-H 'Content-Type: application/json' --data-binary @- "$VAULT_ADDR/v1/secret/data/$1"
		;;
	aws)
		v=$(gen)
		if [ -n "${RB_AWS:-}" ]; then
			"$RB_AWS" --endpoint-url "$RB_AWS_ENDPOINT" secretsmanager put-secret-value \
				--secret-id "$1" --secret-string "$v" >/dev/null
		else
			printf %s "$v" | "${PYTHON:-python3}" "$RB_AWS_SIGNER" "$RB_AWS_ENDPOINT" "$1"
		fi
		;;
	k8s)
		v=$(gen | base64 | tr -d '\n')
		"${RB_KUBECTL:-kubectl}" patch secret "$2" -n "$1" --type merge \
			-p "{\"data\":{\"password\":\"$v\"}}" >/dev/null
		;;
	restart)
		"${RB_KUBECTL:-kubectl}" rollout restart "deployment/$2" -n "$1" >/dev/null
		;;
	*)
		echo "runbook: unknown kind '$kind'" >&2
		return 2
		;;
	esac
}

case ${1:-} in
one)
	shift
	one "$@"
	;;
seq)
	# shellcheck disable=SC2086 # each line is KIND ARG... split on blanks
	while read -r line; do one $line; done
	;;
*)
	echo "usage: runbook.sh one KIND ARG... | runbook.sh seq < ITEMS" >&2
	exit 2
	;;
esac
