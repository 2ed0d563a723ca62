# bench: rules for this part of the tree (included by the top Makefile.am)
include bench/shm.mk
include bench/ferry.mk
include bench/onnx.mk
include bench/ort.mk
include bench/grpc.mk
include bench/study.mk
include bench/distance.mk
include bench/fair.mk
include bench/h2attack.mk
