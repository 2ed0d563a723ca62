/* SPDX-License-Identifier: MIT */
/*
 * ox_backend.h - the built-in "onnx" backend (module prefix ox_)
 *
 * Serves Triton-style repositories of ONNX models: config.pbtxt with
 * `backend: "onnxruntime"` or `platform: "onnxruntime_onnx"` (mapped to
 * "onnx" by be_backend_name) and <model>/<version>/model.onnx, run by the
 * native executor (ox_exec.h) on the CPU and, in a build with CUDA, by
 * its GPU twin (ox_cuda.h), the module ox_cuda.so, loaded the first time
 * a KIND_GPU instance is created on a node with a GPU.
 *
 * Loading.  model.onnx is parsed, checked and planned once per model
 * version; its weights are stored once (on the host, and once per device
 * that runs a KIND_GPU instance) and shared by every instance.  The config
 * must agree with the file: each config input is a graph input of the same
 * name and every graph input is in the config; each config output is a
 * graph output (graph outputs missing from the config are computed and
 * dropped); every tensor is TYPE_FP32; dims equal the model's, without the
 * batch dimension when max_batch_size > 0 (the model must then declare a
 * batch dimension on each of them), with a fixed first dimension for it
 * when max_batch_size is 0.  A mismatch, an unsupported operator (each
 * offending node named) or a damaged file fails that model only.
 *
 * Instances.  KIND_CPU (and KIND_MODEL): one executor context per instance
 * sized for max_batch_size.  A batch of one request runs in place on the
 * client's buffers (no copy); a batch of several is gathered into the
 * instance's contiguous buffers, run once and scattered back.
 * KIND_GPU (CUDA builds): one stream, one cuBLAS handle and device buffers
 * per instance, allocated at load; inputs are copied straight from each
 * request's memory to its rows on the device, outputs straight back; each
 * batch size's forward pass is captured in a CUDA graph on first use.
 *
 * Threads.  OpenBLAS runs ONE thread per call by default, so N CPU
 * instances use N cores.  The config parameter "intra_op_thread_count"
 * (Triton's onnxruntime name) changes it; OpenBLAS's count is process
 * wide, so the last model loaded with the parameter sets it for all.
 * Parameter "cuda_graphs": "false" turns graph capture off.
 */
#ifndef FERRY_OX_BACKEND_H
#define FERRY_OX_BACKEND_H

#include <stddef.h>

#include "broker/sched/be_host.h"

/* The entry-point table (also used by the test plugin build). */
extern const struct be_ops ox_be_ops;

#endif /* FERRY_OX_BACKEND_H */
