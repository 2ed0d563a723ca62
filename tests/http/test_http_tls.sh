#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test_http_tls.sh - TLS and mutual TLS on the HTTP/REST endpoint, which
# takes the gRPC certificate options (--grpc-tls-cert / -key / -ca): a CA,
# server and client certificates made here with openssl, ferryd started
# with them, and curl as the client.  Who gets in, case by case, and each
# refusal for its reason: curl's own (it does not trust the server) or
# ferryd's answer (403 and its error object when the client has no
# certificate the CA signed; libmicrohttpd asks for a certificate without
# failing the handshake, so the refusal is an HTTP answer).  One "PASS:" /
# "FAIL:" line per case (scripts/test-summary.sh counts them).
set -uo pipefail
top=${FERRY_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${FERRY_TOP_BUILDDIR:-$top/build}
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }
d=$(mktemp -d /tmp/ferry-http-tls-XXXXXX)
pid= pid2=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "$pid2" ] && kill $pid2 2>/dev/null; rm -rf "$d"' EXIT
cd "$d" || exit 1
. "$top/tests/tls_certs.sh"

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(freeport)
port2=$(freeport)
ferryd=$build/broker/ferryd
fail=0
# TLS on $port; mutual TLS on $port2.
"$ferryd" -m "$top/examples/models" -s "$d/s.sock" --grpc-port 0 --metrics-port 0 \
	--http-port "$port" --grpc-tls-cert server.pem --grpc-tls-key server.key 2>ferryd.log &
pid=$!
"$ferryd" -m "$top/examples/models" -s "$d/s2.sock" --grpc-port 0 --metrics-port 0 \
	--http-port "$port2" --grpc-tls-cert server.pem --grpc-tls-key server.key \
	--grpc-tls-ca ca.pem 2>ferryd2.log &
pid2=$!
for _ in $(seq 200); do [ -S "$d/s.sock" ] && [ -S "$d/s2.sock" ] && break; sleep 0.05; done

# case NAME WANT_STATUS WANT_TEXT CURL_ARGS...: curl's status (000 when it
# refused) and what it said or got must match.
case_() {
	local name=$1 want=$2 text=$3 out st
	shift 3
	out=$(curl -sS -o "$d/body" -w '%{http_code}' "$@" 2>&1)
	st=${out: -3}
	if [ "$st" = "$want" ] && { [ -z "$text" ] || cat "$d/body" <(echo "$out") | grep -q "$text"; }; then
		echo "PASS: $name: $st${text:+ ($text)}"
	else
		echo "FAIL: $name: got $st, wanted $want${text:+ with '$text'}: $out $(head -c 300 "$d/body")"
		fail=1
	fi
}
u=https://127.0.0.1:$port/v2/models/simple
u2=https://127.0.0.1:$port2/v2/models/simple
case_ "TLS, a client that trusts the CA" 200 '"name":"simple"' --cacert ca.pem "$u"
case_ "TLS, a client that does not trust the server" 000 "certificate" "$u"
case_ "TLS, plaintext to the TLS port" 000 "" "http://127.0.0.1:$port/v2/models/simple"
case_ "mutual TLS, the client's certificate" 200 '"name":"simple"' --cacert ca.pem \
	--cert client.pem --key client.key "$u2"
case_ "mutual TLS, no client certificate" 403 "client certificate" --cacert ca.pem "$u2"
case_ "mutual TLS, a certificate the CA did not sign" 403 "client certificate" --cacert ca.pem \
	--cert rogue.pem --key rogue.key "$u2"
if "$ferryd" -m "$top/examples/models" -s "$d/half.sock" --grpc-port 0 --metrics-port 0 \
	--http-port "$(freeport)" --grpc-tls-cert server.pem --grpc-tls-key nonexistent.key 2>half.log; then
	echo "FAIL: ferryd with a key file that does not exist: it started"; fail=1
elif grep -q "nonexistent.key" half.log; then
	echo "PASS: ferryd with a key file that does not exist: refused to start, naming it"
else
	echo "FAIL: ferryd with a key file that does not exist: no reason given"; cat half.log; fail=1
fi
exit $fail
