/* SPDX-License-Identifier: MIT */
/*
 * fshm_wire.h - everything that crosses a ferry session segment.
 *
 * A session segment is one sealed memfd, created by ferryd, mapped by ferryd
 * and by exactly one client process.  Only offsets (from the start of the
 * segment, or from the start of the arena where said) cross it, never
 * pointers.  The broker trusts nothing it reads here; the client trusts the
 * broker but still bounds-checks what it reads.
 *
 *   +-----------------+  0
 *   | header page     |  struct fshm_hdr, 4096 bytes
 *   +-----------------+  hdr.sq.offset (page aligned)
 *   | SQ ring         |  struct fshm_ring_ctl (128 B) + sq.entries * 64 B
 *   +-----------------+  hdr.cq.offset (page aligned)
 *   | CQ ring         |  struct fshm_ring_ctl (128 B) + cq.entries * 32 B
 *   +-----------------+  hdr.arena.offset (page aligned)
 *   | arena           |  tensors and request descriptors
 *   +-----------------+  hdr.seg_size
 *
 * struct fshm_hdr:
 *
 *   OFFSET SIZE DESCRIPTION
 *   0      8    magic, FSHM_MAGIC ("FERRYSEG" little endian)
 *   8      4    abi_version: FSHM_ABI_MAJOR << 16 | FSHM_ABI_MINOR
 *   12     4    hdr_size: FSHM_HDR_SIZE (4096)
 *   16     8    features: FSHM_F_* bits the broker turned on
 *   24     8    seg_size: bytes of the whole segment (== fstat size)
 *   32     8    epoch: the broker's start time, ns since the Unix epoch
 *   40     8    session_id: broker-assigned
 *   48     24   sq: struct fshm_area (offset, bytes, entries, entry_size)
 *   72     24   cq: struct fshm_area
 *   96     24   arena: struct fshm_area (entries = 0, entry_size = alignment)
 *   120    136  reserved, zero
 *   256    64   broker_wake: the broker's sleeping flag (client reads)
 *   320    64   client_wake: the client's sleeping flag and the CPU it
 *                last slept on (broker reads; ABI 1.1)
 *   384    3712 reserved, zero
 *
 * Compatibility: a peer refuses a segment whose major ABI differs; a minor
 * bump only adds feature bits or uses reserved words that were zero before.
 */
#ifndef FSHM_WIRE_H
#define FSHM_WIRE_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

#define FSHM_MAGIC      0x4745535952524546ULL /* "FERRYSEG" */
#define FSHM_ABI_MAJOR  1
#define FSHM_ABI_MINOR  1
#define FSHM_ABI_VERSION ((FSHM_ABI_MAJOR << 16) | FSHM_ABI_MINOR)
#define FSHM_HDR_SIZE   4096
#define FSHM_CACHELINE  64
#define FSHM_PAGE       4096

/* Feature bits (hdr.features).  Unknown bits are refused by the client. */
#define FSHM_F_NUMA_BOUND   (1ULL << 0)  /* arena bound to a NUMA node */
#define FSHM_F_GPU_PINNED   (1ULL << 1)  /* arena registered with the GPU */
#define FSHM_F_ALL          (FSHM_F_NUMA_BOUND | FSHM_F_GPU_PINNED)

/* Hard bounds, checked on every segment. */
#define FSHM_RING_MAX_ENTRIES (1u << 20)
#define FSHM_SEG_MAX_BYTES    (1ULL << 40)

struct fshm_area {
	uint64_t offset;      /* from the start of the segment */
	uint64_t bytes;       /* the whole area, ring control included */
	uint32_t entries;     /* ring capacity, a power of two; 0 for the arena */
	uint32_t entry_size;  /* ring entry bytes; the arena's alignment */
};
static_assert(sizeof(struct fshm_area) == 24, "fshm_area layout");

/*
 * A wake-up flag alone on its cache line: written by one side only.
 *
 *   OFFSET SIZE DESCRIPTION
 *   0      4    sleeping: 1 while the owner is (about to be) blocked
 *   4      4    cpu: client_wake: 1 + the CPU the client last blocked on
 *                waiting (the broker then runs the session's work on a
 *                poller pinned there, so a client that sleeps leaves its
 *                core to the work it waits for); broker_wake: 1 + the CPU
 *                of the poller serving the session (a client never spins
 *                on that CPU: it would only keep the poller off it); 0
 *                unknown.  ABI 1.1; hints, bounded by each reader
 *   8      56   reserved, zero
 */
struct fshm_wake {
	_Atomic uint32_t sleeping;
	_Atomic uint32_t cpu;
	uint32_t reserved[14];
};
static_assert(sizeof(struct fshm_wake) == FSHM_CACHELINE, "fshm_wake layout");
static_assert(offsetof(struct fshm_wake, cpu) == 4, "fshm_wake layout");

struct fshm_hdr {
	uint64_t magic;
	uint32_t abi_version;
	uint32_t hdr_size;
	uint64_t features;
	uint64_t seg_size;
	uint64_t epoch;
	uint64_t session_id;
	struct fshm_area sq;
	struct fshm_area cq;
	struct fshm_area arena;
	uint64_t reserved0[17];
	struct fshm_wake broker_wake;
	struct fshm_wake client_wake;
	uint64_t reserved1[464];
};
static_assert(sizeof(struct fshm_hdr) == FSHM_HDR_SIZE, "fshm_hdr size");
static_assert(offsetof(struct fshm_hdr, abi_version) == 8, "hdr layout");
static_assert(offsetof(struct fshm_hdr, features) == 16, "hdr layout");
static_assert(offsetof(struct fshm_hdr, seg_size) == 24, "hdr layout");
static_assert(offsetof(struct fshm_hdr, epoch) == 32, "hdr layout");
static_assert(offsetof(struct fshm_hdr, session_id) == 40, "hdr layout");
static_assert(offsetof(struct fshm_hdr, sq) == 48, "hdr layout");
static_assert(offsetof(struct fshm_hdr, cq) == 72, "hdr layout");
static_assert(offsetof(struct fshm_hdr, arena) == 96, "hdr layout");
static_assert(offsetof(struct fshm_hdr, broker_wake) == 256, "hdr layout");
static_assert(offsetof(struct fshm_hdr, client_wake) == 320, "hdr layout");

/*
 * Ring control block, at the start of each ring area.  The producer writes
 * only `tail`, the consumer only `head`; each on its own cache line so the
 * two sides never false-share.  Indices run free (wrap at 2^32); the slot of
 * index i is i & (entries - 1).
 *
 *   OFFSET SIZE DESCRIPTION
 *   0      4    tail: producer's index (next slot to fill)
 *   4      60   reserved
 *   64     4    head: consumer's index (next slot to read)
 *   68     60   reserved
 *   128    ...  entries[entries * entry_size]
 */
struct fshm_ring_ctl {
	_Atomic uint32_t tail;
	uint32_t reserved0[15];
	_Atomic uint32_t head;
	uint32_t reserved1[15];
};
static_assert(sizeof(struct fshm_ring_ctl) == 2 * FSHM_CACHELINE, "ring ctl");
static_assert(offsetof(struct fshm_ring_ctl, head) == FSHM_CACHELINE, "ring ctl");

/* ---------------------------------------------------------------------- */
/* Submission and completion entries.                                      */

enum fshm_op {
	FSHM_OP_NOP   = 0,  /* completes at once with status 0 (ring test) */
	FSHM_OP_INFER = 1,  /* run desc's request on model_id */
};

/*
 * Submission queue entry, 64 bytes, written by the client.
 *
 *   OFFSET SIZE DESCRIPTION
 *   0      8    user_data: echoed in the completion
 *   8      4    opcode: enum fshm_op
 *   12     4    model_id: the broker's handle for a model version (from the
 *               control socket's model metadata)
 *   16     8    desc_off: arena offset of the struct fshm_req_desc
 *   24     4    desc_bytes: bytes of that descriptor block
 *   28     4    flags: zero (reserved for FSHM_SQE_F_*)
 *   32     4    priority: 0 = the model's default level
 *   36     4    reserved
 *   40     8    timeout_us: 0 = the model's default queue timeout
 *   48     16   reserved
 */
struct fshm_sqe {
	uint64_t user_data;
	uint32_t opcode;
	uint32_t model_id;
	uint64_t desc_off;
	uint32_t desc_bytes;
	uint32_t flags;
	uint32_t priority;
	uint32_t reserved0;
	uint64_t timeout_us;
	uint64_t reserved1[2];
};
static_assert(sizeof(struct fshm_sqe) == 64, "sqe layout");
static_assert(offsetof(struct fshm_sqe, desc_off) == 16, "sqe layout");
static_assert(offsetof(struct fshm_sqe, timeout_us) == 40, "sqe layout");

/*
 * Completion queue entry, 32 bytes, written by the broker.
 *
 *   OFFSET SIZE DESCRIPTION
 *   0      8    user_data: from the submission
 *   8      4    status: 0 or a negative ferry error code
 *   12     4    flags: FSHM_CQE_F_*
 *   16     16   reserved
 */
#define FSHM_CQE_F_MSG (1u << 0) /* desc.errmsg holds a message */
#define FSHM_CQE_F_STALE (1u << 1) /* refused: model_id names a version a
                                   * reload replaced; resolve the model
                                   * again and resubmit (it did not run) */
struct fshm_cqe {
	uint64_t user_data;
	int32_t status;
	uint32_t flags;
	uint64_t reserved[2];
};
static_assert(sizeof(struct fshm_cqe) == 32, "cqe layout");

/* ---------------------------------------------------------------------- */
/* Request descriptors, in the arena.                                      */

#define FSHM_MAX_DIMS     8
#define FSHM_MAX_TENSORS  64   /* inputs + outputs of one request */
#define FSHM_ERRMSG_LEN   176

/*
 * One tensor of a request, 96 bytes.  Inputs: the client fills every field.
 * Outputs: the client fills index, offset and bytes (the capacity it
 * allocated); on success the broker overwrites dtype, ndims, dims and bytes
 * with what it wrote.
 *
 *   OFFSET SIZE DESCRIPTION
 *   0      4    index: position of the input / output in the model metadata
 *   4      4    dtype: enum ferry_dtype
 *   8      4    ndims: <= FSHM_MAX_DIMS, batch dimension included
 *   12     4    flags: 0 (offset is in the arena), or FSHM_TENSOR_CUDA |
 *                region id << FSHM_TENSOR_REGION_SHIFT (offset is in that
 *                CUDA IPC region of the session; CudaRegister)
 *   16     64   dims[8]
 *   80     8    offset: arena (or region) offset of the data, a multiple of 8
 *   88     8    bytes: data bytes (input) / capacity, then bytes written
 */
#define FSHM_TENSOR_CUDA          0x1u
#define FSHM_TENSOR_REGION_SHIFT  8
#define FSHM_TENSOR_REGION_MAX    0xffffffu

struct fshm_tensor {
	uint32_t index;
	uint32_t dtype;
	uint32_t ndims;
	uint32_t flags;
	int64_t dims[FSHM_MAX_DIMS];
	uint64_t offset;
	uint64_t bytes;
};
static_assert(sizeof(struct fshm_tensor) == 96, "tensor layout");
static_assert(offsetof(struct fshm_tensor, offset) == 80, "tensor layout");

/*
 * Request descriptor block: header, then ninputs input tensors, then
 * noutputs output tensors.  desc_bytes in the SQE must equal
 * fshm_req_desc_bytes(ninputs + noutputs).
 *
 *   OFFSET SIZE DESCRIPTION
 *   0      4    ninputs
 *   4      4    noutputs
 *   8      4    status: the broker's copy of the CQE status
 *   12     4    reserved
 *   16     176  errmsg: NUL-terminated message when status != 0
 *   192    96*n tensors
 */
struct fshm_req_desc {
	uint32_t ninputs;
	uint32_t noutputs;
	int32_t status;
	uint32_t reserved;
	char errmsg[FSHM_ERRMSG_LEN];
	struct fshm_tensor t[];
};
static_assert(sizeof(struct fshm_req_desc) == 192, "req desc layout");
static_assert(offsetof(struct fshm_req_desc, t) == 192, "req desc layout");

static inline uint64_t fshm_req_desc_bytes(uint32_t ntensors)
{
	return sizeof(struct fshm_req_desc) +
	       (uint64_t)ntensors * sizeof(struct fshm_tensor);
}

#endif /* FSHM_WIRE_H */
