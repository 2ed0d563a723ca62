# SPDX-License-Identifier: MIT
"""What the tritonclient suites share (tests/grpc/test_tritonclient.py,
tests/http/test_tritonclient_http.py): every KServe datatype, and the test
models they write into a copy of examples/models."""
import os
import socket

import numpy as np

# numpy dtype, KServe name, config name
DTYPES = [
    (np.bool_, "BOOL", "TYPE_BOOL"), (np.uint8, "UINT8", "TYPE_UINT8"),
    (np.uint16, "UINT16", "TYPE_UINT16"), (np.uint32, "UINT32", "TYPE_UINT32"),
    (np.uint64, "UINT64", "TYPE_UINT64"), (np.int8, "INT8", "TYPE_INT8"),
    (np.int16, "INT16", "TYPE_INT16"), (np.int32, "INT32", "TYPE_INT32"),
    (np.int64, "INT64", "TYPE_INT64"), (np.float16, "FP16", "TYPE_FP16"),
    (np.float32, "FP32", "TYPE_FP32"), (np.float64, "FP64", "TYPE_FP64"),
    (np.object_, "BYTES", "TYPE_STRING"),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def write_model(repo, name, text):
    os.makedirs(os.path.join(repo, name, "1"), exist_ok=True)
    with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
        f.write(text)


def ident_cfg(name, ctype, dims="[ -1 ]", extra=""):
    return ('name: "%s"\nbackend: "identity"\nmax_batch_size: 8\n'
            'input [ { name: "IN" data_type: %s dims: %s } ]\n'
            'output [ { name: "OUT" data_type: %s dims: %s } ]\n%s' % (name, ctype, dims, ctype, dims, extra))
