"""One connection to ferryd's gRPC endpoint with the real tritonclient,
for tests/grpc/test_tls.sh: prints "served" when is_server_live() answers,
else "refused: " and the whole error (the client's reason).

  tls_check.py HOST:PORT [--plaintext] [--ca PEM | --no-ca] [--cert PEM --key PEM]

--no-ca: TLS with gRPC's default roots (no CA file given).
"""
import argparse

import tritonclient.grpc as grpcclient

p = argparse.ArgumentParser()
p.add_argument("url")
p.add_argument("--plaintext", action="store_true")
p.add_argument("--ca")
p.add_argument("--no-ca", action="store_true")
p.add_argument("--cert")
p.add_argument("--key")
a = p.parse_args()
kw = {}
if not a.plaintext:
    kw = dict(ssl=True, root_certificates=None if a.no_ca else a.ca,
              private_key=a.key, certificate_chain=a.cert)
try:
    c = grpcclient.InferenceServerClient(a.url, **kw)
    print("served" if c.is_server_live(client_timeout=10) else "refused: not live")
except Exception as e:  # a failed handshake is UNAVAILABLE, with gRPC's reason
    print("refused: " + " ".join(str(e).split()))
