#!/usr/bin/env bash
# TLS and mutual TLS on the gRPC endpoint: a CA, server and client
# certificates made here with openssl, ferryd started with
# --grpc-tls-cert/-key/-ca, then who gets in is checked, case by case,
# with libferry's own transport (grpcs:// and $FERRY_GRPC_TLS_CA/CERT/KEY,
# through examples/simple_client) and with tritonclient (tls_check.py).
# Every refusal is checked for its reason: the client's message where the
# client refused (it does not trust the server), ferryd's log where the
# server refused (the client only sees the socket close).  Also: half a
# TLS configuration stops ferryd instead of falling back to plaintext, and
# one of libferry's is refused with its reason.  One "PASS:" / "FAIL:" /
# "SKIP:" line per case (scripts/test-summary.sh counts them).
set -uo pipefail
top=${FERRY_TOP_SRCDIR:?run through make check}
build=${FERRY_TOP_BUILDDIR:?run through make check}
py=$top/.venv/bin/python
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }
have_triton=1
"$py" -c 'import tritonclient.grpc' 2>/dev/null || have_triton=0
d=$(mktemp -d /tmp/ferry-tls-XXXXXX)
pid= pid2=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "$pid2" ] && kill $pid2 2>/dev/null; rm -rf "$d"' EXIT
cd "$d"
. "$top/tests/tls_certs.sh"

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(freeport)
port2=$(freeport)
ferryd=$build/broker/ferryd
fail=0
if "$ferryd" -m "$top/examples/models" -s "$d/half.sock" --grpc-port "$port" --metrics-port 0 \
	--grpc-tls-cert server.pem 2>half.log; then
	echo "FAIL: ferryd, a certificate and no key: it started"; fail=1
elif grep -q "needs both --grpc-tls-cert and --grpc-tls-key" half.log; then
	echo "PASS: ferryd, a certificate and no key: refused to start (needs both --grpc-tls-cert and --grpc-tls-key)"
else
	echo "FAIL: ferryd, a certificate and no key: no reason given"; cat half.log; fail=1
fi

# Mutual TLS on $port; TLS without client certificates on $port2.
"$ferryd" -m "$top/examples/models" -s "$d/s.sock" --grpc-port "$port" --metrics-port 0 \
	--grpc-tls-cert server.pem --grpc-tls-key server.key --grpc-tls-ca ca.pem 2>ferryd.log &
pid=$!
"$ferryd" -m "$top/examples/models" -s "$d/s2.sock" --grpc-port "$port2" --metrics-port 0 \
	--grpc-tls-cert server.pem --grpc-tls-key server.key 2>ferryd2.log &
pid2=$!
for _ in $(seq 200); do [ -S "$d/s.sock" ] && [ -S "$d/s2.sock" ] && break; sleep 0.05; done

# verdict WHO WHAT WANT CLIENT_RE LOG OFFSET SERVER_RE OUT: one line for a
# case.  OUT is "served" or "refused: <the client's message>".  A refusal
# must carry its reason: CLIENT_RE in the client's message, and SERVER_RE
# (when given) in what ferryd logged after OFFSET (gRPC logs a server-side
# handshake failure there, a moment later).
verdict() {
	local who=$1 what=$2 want=$3 cre=$4 log=$5 off=$6 sre=$7 out=$8 got=refused slog=
	case $out in served*) got=served ;; esac
	if [ "$got" != "$want" ]; then
		echo "FAIL: $who, $what: $got, expected $want: $(echo "$out" | tail -1 | cut -c1-300)"
		fail=1; return
	fi
	if [ "$want" = served ]; then
		echo "PASS: $who, $what: served"; return
	fi
	if ! echo "$out" | grep -Eq "$cre"; then
		echo "FAIL: $who, $what: refused, but not for the reason expected ($cre): $(echo "$out" | tail -1 | cut -c1-300)"
		fail=1; return
	fi
	if [ -n "$sre" ]; then
		for _ in $(seq 60); do
			slog=$(tail -c +"$((off + 1))" "$log" | grep -Eo "$sre" | head -1)
			[ -n "$slog" ] && break
			sleep 0.05
		done
		if [ -z "$slog" ]; then
			echo "FAIL: $who, $what: refused, but ferryd's log does not say why ($sre)"
			tail -c +"$((off + 1))" "$log" | tail -5
			fail=1; return
		fi
	fi
	echo "PASS: $who, $what: refused (client: $(echo "$out" | grep -Eo "$cre" | head -1)${slog:+; ferryd: $slog})"
}
size() { stat -c %s "$1"; }

# The cases against both brokers: who refuses, and the reason each side
# gives.  Columns: what, broker (mtls or tls), want, the client's reason,
# ferryd's reason, then the client's settings (libferry's environment;
# tls_check.py's options are derived from them).
refused_by_server="Socket closed"
not_trusted="certificate verify failed|CERTIFICATE_VERIFY_FAILED"
run_case() {
	local what=$1 srv=$2 want=$3 cre=$4 sre=$5; shift 5
	local port_=$port log=ferryd.log scheme=grpcs ca= cert= key= plain=0 v out off
	[ "$srv" = tls ] && { port_=$port2; log=ferryd2.log; }
	for v; do
		case $v in
		FERRY_GRPC_TLS_CA=*) ca=${v#*=} ;;
		FERRY_GRPC_TLS_CERT=*) cert=${v#*=} ;;
		FERRY_GRPC_TLS_KEY=*) key=${v#*=} ;;
		plaintext) plain=1; scheme=grpc ;;
		esac
	done
	# libferry
	off=$(size "$log")
	out=$(env -u FERRY_GRPC_TLS_CA -u FERRY_GRPC_TLS_CERT -u FERRY_GRPC_TLS_KEY \
		${ca:+FERRY_GRPC_TLS_CA=$ca} ${cert:+FERRY_GRPC_TLS_CERT=$cert} ${key:+FERRY_GRPC_TLS_KEY=$key} \
		timeout 20 "$build/examples/simple_client" "$scheme://localhost:$port_" 2>&1)
	if [ $? -eq 0 ] && echo "$out" | grep -q '^PASS: simple'; then out=served; else out="refused: $out"; fi
	verdict libferry "$what" "$want" "$cre" "$log" "$off" "$sre" "$out"
	# tritonclient
	if [ $have_triton = 0 ]; then
		echo "SKIP: tritonclient, $what: no tritonclient in $py (run scripts/setup-debian.sh)"
		return
	fi
	local opt=()
	if [ $plain = 1 ]; then opt=(--plaintext)
	elif [ -n "$ca" ]; then opt=(--ca "$ca")
	else opt=(--no-ca)
	fi
	[ -z "$cert" ] || opt+=(--cert "$cert" --key "$key")
	off=$(size "$log")
	out=$(timeout 30 "$py" -W ignore "$top/tests/grpc/tls_check.py" "localhost:$port_" "${opt[@]}" 2>&1)
	verdict tritonclient "$what" "$want" "$cre" "$log" "$off" "$sre" "$out"
}

run_case "mTLS, CA and client certificate" mtls served "" "" \
	FERRY_GRPC_TLS_CA=ca.pem FERRY_GRPC_TLS_CERT=client.pem FERRY_GRPC_TLS_KEY=client.key
run_case "mTLS, no client certificate" mtls refused "$refused_by_server" \
	"peer did not return a certificate" FERRY_GRPC_TLS_CA=ca.pem
run_case "mTLS, another CA's client certificate" mtls refused "$refused_by_server" \
	"certificate verify failed" \
	FERRY_GRPC_TLS_CA=ca.pem FERRY_GRPC_TLS_CERT=rogue.pem FERRY_GRPC_TLS_KEY=rogue.key
run_case "mTLS, plaintext" mtls refused "$refused_by_server" "wrong version number" plaintext
run_case "TLS, the server's CA" tls served "" "" FERRY_GRPC_TLS_CA=ca.pem
run_case "TLS, no CA (gRPC's default roots)" tls refused "$not_trusted" ""
run_case "TLS, another CA" tls refused "$not_trusted" "" FERRY_GRPC_TLS_CA=rogue.pem
run_case "TLS, plaintext" tls refused "$refused_by_server" "wrong version number" plaintext

# libferry's own configuration errors, refused before any connection.
conf() {
	local what=$1 reason=$2; shift 2
	local out
	out=$(env -u FERRY_GRPC_TLS_CA -u FERRY_GRPC_TLS_CERT -u FERRY_GRPC_TLS_KEY "$@" \
		timeout 20 "$build/examples/simple_client" "grpcs://localhost:$port" 2>&1)
	if [ $? -ne 0 ] && echo "$out" | grep -qF "$reason"; then
		echo "PASS: libferry, $what: refused ($reason)"
	else
		echo "FAIL: libferry, $what: expected a refusal saying '$reason': $(echo "$out" | tail -1)"
		fail=1
	fi
}
conf "a certificate without its key" \
	"mutual TLS needs both FERRY_GRPC_TLS_CERT and FERRY_GRPC_TLS_KEY" \
	FERRY_GRPC_TLS_CA=ca.pem FERRY_GRPC_TLS_CERT=client.pem
conf "a CA file that is not there" \
	"FERRY_GRPC_TLS_CA: cannot read nope.pem: No such file or directory" \
	FERRY_GRPC_TLS_CA=nope.pem

kill $pid $pid2
wait $pid; st=$?
wait $pid2; st2=$?
pid= pid2=
[ $st = 0 ] && [ $st2 = 0 ] || { echo "FAIL: ferryd exit status $st / $st2"; fail=1; }
exit $fail
