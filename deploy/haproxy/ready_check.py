#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The bytes of HAProxy's health check of a ferryd: one KServe v2
ServerReady call over cleartext HTTP/2 (h2c, prior knowledge).

    deploy/haproxy/ready_check.py          # prints the two hex strings

HAProxy 2.6 cannot put a binary body (a gRPC message starts with NUL
bytes) into an `http-check send`, and it cannot read a gRPC status from
trailers, so haproxy.cfg checks with `tcp-check`: it sends the bytes
printed on the first line (the HTTP/2 connection preface, an empty
SETTINGS frame, the request's HEADERS and one DATA frame holding the
empty ServerReadyRequest) and passes when the answer contains the bytes
of the second line: the DATA frame of stream 1 carrying
ServerReadyResponse{ready: true}.  A broker that answers ready: false (it
is shutting down and finishing what it holds) sends a DATA frame of a
zero-length message instead, so the check fails and HAProxy stops sending
it new requests while it drains.

The request's headers are HPACK without Huffman coding and without
indexing, so the bytes are the same on every connection (RFC 7541):
:method POST and :scheme http come from the static table (0x83, 0x86),
:path, :authority and content-type are literals with an indexed name
(static entries 4, 1 and 31), te: trailers a literal with a literal name.
tests/deploy/test_deploy.sh checks that haproxy.cfg holds these bytes.
"""

PATH = "/inference.GRPCInferenceService/ServerReady"


def string(s):
    b = s.encode()
    assert len(b) < 127          # one-byte length, no Huffman bit
    return bytes([len(b)]) + b


def frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + \
        stream.to_bytes(4, "big") + payload


def request():
    headers = (bytes([0x83, 0x86])                        # POST, http
               + bytes([0x04]) + string(PATH)             # :path
               + bytes([0x01]) + string("ferryd")         # :authority
               + bytes([0x0f, 0x10]) + string("application/grpc")
               + bytes([0x00]) + string("te") + string("trailers"))
    return (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + frame(0x4, 0, 0, b"")                       # SETTINGS
            + frame(0x1, 0x4, 1, headers)                 # HEADERS, END_HEADERS
            + frame(0x0, 0x1, 1, bytes(5)))               # DATA, END_STREAM: empty message


def ready_answer():
    # gRPC message: not compressed, length 2, field 1 (varint) = 1
    return frame(0x0, 0, 1, bytes([0, 0, 0, 0, 2, 0x08, 0x01]))


if __name__ == "__main__":
    print(request().hex())
    print(ready_answer().hex())
