/* SPDX-License-Identifier: MIT */
/*
 * ox_backend.h - the built-in "onnx" backend (module prefix onnx_)
 *
 * Serves Triton-style repositories of ONNX models: config.pbtxt with
 * `backend: "onnxruntime"` or `platform: "onnxruntime_onnx"` (mapped to
 * "onnx" by be_backend_name) and <model>/<version>/model.onnx, run by the
 * native executor (ox_exec.h) on the CPU and, in a build with CUDA, by
 * its GPU twin (ox_cuda.h).
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


/* 1 when this ferryd was built with CUDA (the GPU path exists), else 0. */
int ox_gpu_built(void);

/* CUDA devices the runtime sees; 0 without CUDA, a driver or a device. */
int ox_gpu_device_count(void);

/* Memory in use and in all on @device; FERRY_UNAVAILABLE without one. */
int ox_gpu_memory(int device, size_t *used, size_t *total);

/*
 * ox_gpu_register_arena - page-lock a client arena mapping for every
 * device (cudaHostRegister), so batches are copied at pinned speed
 * straight from it.  Call when a session is created and the broker has a
 * GPU; pair with ox_gpu_unregister_arena() before the mapping goes.
 * Returns 0, FERRY_UNAVAILABLE (no CUDA or no device: nothing to do),
 * FERRY_EINVAL, or FERRY_BACKEND when CUDA refuses the range.
 */
int ox_gpu_register_arena(void *base, size_t bytes);
int ox_gpu_unregister_arena(void *base);
/*
 * ox_gpu_ipc_open - open a local client's CUDA IPC handle (64 bytes) on
 * the card named by @pci_bus_id (else ordinal @device), checking that its
 * allocation holds @bytes; see ox_cuda_ipc_open.  FERRY_UNAVAILABLE without
 * CUDA or a device.  ox_gpu_ipc_close undoes it.
 */
int ox_gpu_ipc_open(const void *handle, size_t handle_len, const char *pci_bus_id,
		      int device, uint64_t bytes, void **dptr, int *device_out,
		      char *err, size_t errlen);
void ox_gpu_ipc_close(void *dptr, int device);
/*
 * ox_gpu_set_numa - whether KIND_GPU instances pin their threads to the
 * CPUs of their GPU's NUMA node (ferryd's --numa; on by default).
 * ox_pin_to_node - pin the calling thread to the CPUs of NUMA node
 * @node (libnuma); 0 or a ferry code.
 */
void ox_gpu_set_numa(int on);
int ox_pin_to_node(int node);

/*
 * ox_gpu_numa_node - the NUMA node of CUDA device @device, read from
 * PCI sysfs (/sys/bus/pci/devices/<bus id>/numa_node, the bus id from
 * cudaDeviceGetPCIBusId).  Returns the node (>= 0), FERRY_ENOENT when the
 * kernel reports none (-1: a one-node machine), FERRY_UNAVAILABLE without
 * such a device.
 */
int ox_gpu_numa_node(int device);

/*
 * ox_pci_numa_node - the same lookup for any PCI bus id under a sysfs
 * root ("/sys" normally; tests pass a directory of their own).  The bus id
 * is matched in lower case.  Returns the node, FERRY_ENOENT or
 * FERRY_EINVAL (a bus id with characters outside [0-9a-fA-F:.]).
 */
int ox_pci_numa_node(const char *sysfs_root, const char *busid);

#endif /* FERRY_OX_BACKEND_H */
