#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compare proto/kserve.proto with the descriptors tritonclient ships.

Every message and field ferry declares must have the same name, number,
type and label as Triton's grpc_service.proto / model_config.proto: they
are the wire format.  Usage: check_proto.py DESCRIPTOR_SET (from protoc
--descriptor_set_out).  Exit 0 when they agree, 1 with the differences.
"""
import sys

from google.protobuf import descriptor_pb2
from tritonclient.grpc import model_config_pb2, service_pb2


def triton_messages():
    out = {}

    def rec(m):
        out[m.full_name] = m
        for n in m.nested_types:
            rec(n)

    for fd in (service_pb2.DESCRIPTOR, model_config_pb2.DESCRIPTOR):
        for m in fd.message_types_by_name.values():
            rec(m)
    return out


def ours(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    out = {}

    def rec(prefix, m):
        name = prefix + "." + m.name
        out[name] = m
        for n in m.nested_type:
            rec(name, n)

    for fd in fds.file:
        for m in fd.message_type:
            rec(fd.package, m)
    return out


def main():
    theirs = triton_messages()
    mine = ours(sys.argv[1])
    bad = []
    for name, m in sorted(mine.items()):
        t = theirs.get(name)
        if t is None:
            bad.append("%s: not in Triton's protocol" % name)
            continue
        tf = {f.name: f for f in t.fields}
        for f in m.field:
            g = tf.get(f.name)
            if g is None:
                bad.append("%s.%s: not in Triton's message" % (name, f.name))
            elif (g.number, g.type, g.label) != (f.number, f.type, f.label):
                bad.append("%s.%s: ours %d/%d/%d, Triton's %d/%d/%d" % (
                    name, f.name, f.number, f.type, f.label, g.number, g.type, g.label))
    for b in bad:
        print(b)
    print("%d messages compared, %d differences" % (len(mine), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
