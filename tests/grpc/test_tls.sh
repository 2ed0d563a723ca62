#!/usr/bin/env bash
# TLS and mutual TLS on the gRPC endpoint: a CA, server and client
# certificates made here with openssl, ferryd started with
# --grpc-tls-cert/-key/-ca, then who gets in is checked with libferry's own
# transport (grpcs:// and $FERRY_GRPC_TLS_CA/CERT/KEY, through
# examples/simple_client) and with tritonclient (tls_check.py, when .venv
# has it).  Also: half a TLS configuration stops ferryd instead of falling
# back to plaintext, and one of libferry's is refused with its reason.
set -uo pipefail
top=${FERRY_TOP_SRCDIR:?run through make check}
build=${FERRY_TOP_BUILDDIR:?run through make check}
py=$top/.venv/bin/python
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }
have_triton=1
"$py" -c 'import tritonclient.grpc' 2>/dev/null || { echo "no tritonclient in .venv: libferry's checks only"; have_triton=0; }
d=$(mktemp -d /tmp/ferry-tls-XXXXXX)
pid= pid2=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "$pid2" ] && kill $pid2 2>/dev/null; rm -rf "$d"' EXIT
cd "$d"
mk() { openssl "$@" >/dev/null 2>&1 || { echo "openssl $1 failed"; exit 1; }; }
mk req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=ferry test CA"
mk req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
mk x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext
mk req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=ferry client"
mk x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
mk req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.pem -days 2 -subj "/CN=rogue"

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(freeport)
port2=$(freeport)
ferryd=$build/broker/ferryd
if "$ferryd" -m "$top/examples/models" -s "$d/half.sock" --grpc-port "$port" --metrics-port 0 \
	--grpc-tls-cert server.pem 2>half.log; then
	echo "FAIL: ferryd started with a certificate and no key"; exit 1
fi
grep -q "needs both --grpc-tls-cert and --grpc-tls-key" half.log || { cat half.log; exit 1; }

# Mutual TLS on $port; TLS without client certificates on $port2.
"$ferryd" -m "$top/examples/models" -s "$d/s.sock" --grpc-port "$port" --metrics-port 0 \
	--grpc-tls-cert server.pem --grpc-tls-key server.key --grpc-tls-ca ca.pem 2>ferryd.log &
pid=$!
"$ferryd" -m "$top/examples/models" -s "$d/s2.sock" --grpc-port "$port2" --metrics-port 0 \
	--grpc-tls-cert server.pem --grpc-tls-key server.key 2>ferryd2.log &
pid2=$!
for _ in $(seq 200); do [ -S "$d/s.sock" ] && [ -S "$d/s2.sock" ] && break; sleep 0.05; done

# libferry: simple_client ADDRESS (add_sub, results checked) with the TLS
# variables given; "served" or "refused: <its message>".
fail=0
client() {
	local want=$1 what=$2 addr=$3; shift 3
	local out
	out=$(env -u FERRY_GRPC_TLS_CA -u FERRY_GRPC_TLS_CERT -u FERRY_GRPC_TLS_KEY "$@" \
		timeout 20 "$build/examples/simple_client" "$addr" 2>&1)
	local rc=$?
	local got=refused
	[ $rc -eq 0 ] && echo "$out" | grep -q '^PASS: simple' && got=served
	if [ "$got" != "$want" ]; then
		echo "FAIL: libferry, $what: $got, expected $want"; echo "$out" | tail -3; fail=1
	elif [ "$want" = refused ]; then
		echo "libferry, $what: refused: $(echo "$out" | tail -1 | cut -c1-160)"
	else
		echo "libferry, $what: served"
	fi
	last_out=$out
}
mtls=grpcs://localhost:$port
tls=grpcs://localhost:$port2
client served  "mTLS, CA and client certificate" "$mtls" \
	FERRY_GRPC_TLS_CA=ca.pem FERRY_GRPC_TLS_CERT=client.pem FERRY_GRPC_TLS_KEY=client.key
client refused "mTLS, no client certificate" "$mtls" FERRY_GRPC_TLS_CA=ca.pem
client refused "mTLS, another CA's client certificate" "$mtls" \
	FERRY_GRPC_TLS_CA=ca.pem FERRY_GRPC_TLS_CERT=rogue.pem FERRY_GRPC_TLS_KEY=rogue.key
client refused "mTLS, plaintext" "grpc://localhost:$port"
client served  "TLS, the server's CA" "$tls" FERRY_GRPC_TLS_CA=ca.pem
client refused "TLS, no CA (gRPC's default roots)" "$tls"
client refused "TLS, another CA" "$tls" FERRY_GRPC_TLS_CA=rogue.pem
echo "$last_out" | grep -q "cannot reach the gRPC server at localhost:$port2 over TLS" ||
	{ echo "FAIL: the refusal does not say TLS: $last_out"; fail=1; }
client refused "TLS, plaintext" "grpc://localhost:$port2"
client refused "a certificate without its key" "$mtls" \
	FERRY_GRPC_TLS_CA=ca.pem FERRY_GRPC_TLS_CERT=client.pem
echo "$last_out" | grep -q "mutual TLS needs both FERRY_GRPC_TLS_CERT and FERRY_GRPC_TLS_KEY" ||
	{ echo "FAIL: no reason given: $last_out"; fail=1; }
client refused "a CA file that is not there" "$tls" FERRY_GRPC_TLS_CA=nope.pem
echo "$last_out" | grep -q "FERRY_GRPC_TLS_CA: cannot read nope.pem: No such file or directory" ||
	{ echo "FAIL: no reason given: $last_out"; fail=1; }

rc=0
if [ $have_triton = 1 ]; then
	"$py" "$top/tests/grpc/tls_check.py" "$d" "$port"
	rc=$?
fi
kill $pid $pid2; wait $pid; wait $pid2; pid= pid2=
[ $fail = 0 ] && [ $rc = 0 ] && echo PASS
[ $fail = 0 ] && exit $rc
exit 1
