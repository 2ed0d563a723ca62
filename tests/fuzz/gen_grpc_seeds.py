"""Write the seed corpus of the gRPC fuzz target (tests/fuzz/corpus/grpc/):
ModelInferRequests as tritonclient packs them (its own protobuf classes),
one per way a request carries its data.  Run with the project's venv:

    .venv/bin/python tests/fuzz/gen_grpc_seeds.py tests/fuzz/corpus/grpc
"""
import os
import struct
import sys

import tritonclient.grpc.service_pb2 as pb

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def tensor(req, name, dtype, shape):
    t = req.inputs.add()
    t.name, t.datatype = name, dtype
    t.shape.extend(shape)
    return t


def simple(batch=1):
    r = pb.ModelInferRequest(model_name="simple", id="seed")
    tensor(r, "INPUT0", "INT32", [batch, 16])
    tensor(r, "INPUT1", "INT32", [batch, 16])
    return r


def write(name, req):
    with open(os.path.join(out, name), "wb") as f:
        f.write(req.SerializeToString())


r = simple()
r.raw_input_contents.append(struct.pack("<16i", *range(16)))
r.raw_input_contents.append(struct.pack("<16i", *([1] * 16)))
write("simple_raw", r)

r = simple(2)
r.raw_input_contents.append(struct.pack("<32i", *range(32)))
r.raw_input_contents.append(struct.pack("<32i", *range(32, 64)))
o = r.outputs.add()
o.name = "OUTPUT1"
write("simple_raw_batch2_one_output", r)

r = simple()
r.inputs[0].contents.int_contents.extend(range(16))
r.inputs[1].contents.int_contents.extend([-1] * 16)
write("simple_typed", r)

r = simple()
r.raw_input_contents.append(struct.pack("<16i", *range(16)))
r.raw_input_contents.append(struct.pack("<15i", *range(15)))   # one element short
write("simple_raw_short", r)

r = simple()
for t in r.inputs:
    t.parameters["shared_memory_region"].string_param = "nowhere"
    t.parameters["shared_memory_offset"].int64_param = 0
    t.parameters["shared_memory_byte_size"].int64_param = 64
write("simple_unknown_shm_region", r)

r = pb.ModelInferRequest(model_name="ident")
tensor(r, "IN", "BYTES", [1, 2])
r.raw_input_contents.append(struct.pack("<I", 5) + b"hello" + struct.pack("<I", 0))
write("ident_bytes_raw", r)

r = pb.ModelInferRequest(model_name="ident")
tensor(r, "IN", "BYTES", [2, 1]).contents.bytes_contents.extend([b"ferry", b""])
r.parameters["priority"].uint64_param = 1
write("ident_bytes_typed", r)
