#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What bench/flood.sh and bench/abuse.sh send, written into DIR:

    flood_bodies.py DIR

  DIR/repo/identity       the model both flood: identity on FP32 [16], up to
                          256 rows a batch, dynamic batching with no delay
  DIR/grpc-infer.bin      a ModelInferRequest of one row with its 5-byte gRPC
                          frame, packed by tritonclient's protobuf classes
  DIR/grpc-live.bin       a ServerLiveRequest, framed the same way
  DIR/http-infer.bin      the KServe v2 HTTP body: JSON header, then the row
  DIR/http-infer.len      the JSON header's length (Inference-Header-Content-Length)
"""
import json
import os
import struct
import sys

import numpy as np
from tritonclient.grpc import service_pb2

CONFIG = """name: "identity"
backend: "identity"
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
max_batch_size: 256
dynamic_batching { max_queue_delay_microseconds: 0 }
instance_group [ { kind: KIND_CPU count: 1 } ]
"""


def frame(m):
    b = m.SerializeToString()
    return b"\0" + struct.pack(">I", len(b)) + b


def main(d):
    os.makedirs(os.path.join(d, "repo", "identity", "1"), exist_ok=True)
    with open(os.path.join(d, "repo", "identity", "config.pbtxt"), "w") as f:
        f.write(CONFIG)
    x = np.arange(16, dtype=np.float32).reshape(1, 16)
    q = service_pb2.ModelInferRequest(model_name="identity")
    q.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 16])
    q.raw_input_contents.append(x.tobytes())
    with open(os.path.join(d, "grpc-infer.bin"), "wb") as f:
        f.write(frame(q))
    with open(os.path.join(d, "grpc-live.bin"), "wb") as f:
        f.write(frame(service_pb2.ServerLiveRequest()))
    h = json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 16],
                                "parameters": {"binary_data_size": 64}}],
                    "parameters": {"binary_data_output": True}}).encode()
    with open(os.path.join(d, "http-infer.bin"), "wb") as f:
        f.write(h + x.tobytes())
    with open(os.path.join(d, "http-infer.len"), "w") as f:
        f.write(str(len(h)))


if __name__ == "__main__":
    main(sys.argv[1])
