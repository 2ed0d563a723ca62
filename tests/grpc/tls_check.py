"""Mutual TLS on ferryd's gRPC endpoint, checked with the real tritonclient.

A client with a certificate signed by --grpc-tls-ca is served; one with
no certificate, one with a certificate from another CA, and a plaintext
client are all refused.
"""
import sys

import tritonclient.grpc as grpcclient

d, port = sys.argv[1], sys.argv[2]
url = "localhost:" + port


def live(ssl=True, **kw):
    try:
        c = grpcclient.InferenceServerClient(url, ssl=ssl, root_certificates=d + "/ca.pem" if ssl else None, **kw)
        return c.is_server_live(client_timeout=5)
    except Exception as e:  # the handshake fails: UNAVAILABLE
        return "refused: " + str(e).splitlines()[0][:100]


results = {
    "valid": live(private_key=d + "/client.key", certificate_chain=d + "/client.pem"),
    "no certificate": live(),
    "other CA": live(private_key=d + "/rogue.key", certificate_chain=d + "/rogue.pem"),
    "plaintext": live(ssl=False),
}
for k, v in results.items():
    print(f"{k}: {v}")
ok = results["valid"] is True and all(
    isinstance(results[k], str) and results[k].startswith("refused") for k in ("no certificate", "other CA", "plaintext"))
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
