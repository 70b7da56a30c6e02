#!/usr/bin/env bash
# One identification the way a System block does it today: a new curl process (and so a new
# TLS handshake) for phone/auth and for every collect, until the order is final.
#   curl_identify.sh PERSONAL_NUMBER BASE_URL CERTS_DIR POLL_SECONDS
# JSON is read with bash's own pattern matching, so only bash and curl run.
set -u
pnr=$1 base=$2 certs=$3 poll=$4
tls=(--silent --cert "$certs/client.pem" --key "$certs/client.key" --cacert "$certs/ca.pem"
     -H 'Content-Type: application/json')
r=$(curl "${tls[@]}" -d "{\"personalNumber\":\"$pnr\",\"callInitiator\":\"user\"}" "${base}phone/auth")
[[ $r =~ \"orderRef\":\"([^\"]+)\" ]] || { echo "start failed" >&2; exit 1; }
ref=${BASH_REMATCH[1]}
while :; do
  sleep "$poll"
  r=$(curl "${tls[@]}" -d "{\"orderRef\":\"$ref\"}" "${base}collect")
  [[ $r =~ \"status\":\"([a-z]+)\" ]] || continue
  case ${BASH_REMATCH[1]} in
    pending) ;;
    complete) exit 0 ;;
    *) exit 1 ;;
  esac
done
