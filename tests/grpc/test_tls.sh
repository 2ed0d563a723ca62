#!/usr/bin/env bash
# Mutual TLS on the gRPC endpoint: a CA, server and client certificates
# made here with openssl, ferryd started with --grpc-tls-cert/-key/-ca,
# then tls_check.py (tritonclient) checks who gets in.  Also: half a TLS
# configuration stops ferryd instead of falling back to plaintext.
set -uo pipefail
top=${FERRY_TOP_SRCDIR:?run through make check}
build=${FERRY_TOP_BUILDDIR:?run through make check}
py=$top/.venv/bin/python
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }
"$py" -c 'import tritonclient.grpc' 2>/dev/null || { echo "SKIP: no tritonclient in .venv"; exit 77; }
d=$(mktemp -d /tmp/ferry-tls-XXXXXX)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$d"' EXIT
cd "$d"
mk() { openssl "$@" >/dev/null 2>&1 || { echo "openssl $1 failed"; exit 1; }; }
mk req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=ferry test CA"
mk req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
mk x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext
mk req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=ferry client"
mk x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
mk req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.pem -days 2 -subj "/CN=rogue"

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ferryd=$build/broker/ferryd
if "$ferryd" -m "$top/examples/models" -s "$d/half.sock" --grpc-port "$port" --metrics-port 0 \
	--grpc-tls-cert server.pem 2>half.log; then
	echo "FAIL: ferryd started with a certificate and no key"; exit 1
fi
grep -q "needs both --grpc-tls-cert and --grpc-tls-key" half.log || { cat half.log; exit 1; }

"$ferryd" -m "$top/examples/models" -s "$d/s.sock" --grpc-port "$port" --metrics-port 0 \
	--grpc-tls-cert server.pem --grpc-tls-key server.key --grpc-tls-ca ca.pem 2>ferryd.log &
pid=$!
for _ in $(seq 200); do [ -S "$d/s.sock" ] && break; sleep 0.05; done
"$py" "$top/tests/grpc/tls_check.py" "$d" "$port"
rc=$?
kill $pid; wait $pid; pid=
exit $rc
