# SPDX-License-Identifier: MIT
# tests/tls_certs.sh - sourced by the TLS tests (tests/grpc/test_tls.sh,
# tests/http/test_http_tls.sh): makes, in the current directory, a CA
# (ca.pem, ca.key), a server certificate for localhost and 127.0.0.1 that
# it signed (server.pem, server.key), a client certificate it signed
# (client.pem, client.key) and a self-signed one it did not (rogue.pem,
# rogue.key).  Exits the test (1) when openssl fails.
mk() { openssl "$@" >/dev/null 2>&1 || { echo "FAIL: openssl $1 failed"; exit 1; }; }
mk req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=ferry test CA"
mk req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
mk x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext
mk req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=ferry client"
mk x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
mk req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.pem -days 2 -subj "/CN=rogue"
