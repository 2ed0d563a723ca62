/* SPDX-License-Identifier: MIT */
/*
 * fshm_guard.c - copies to and from memory that may vanish under them.
 *
 * ferryd maps memory it cannot seal: a POSIX shared-memory object that a
 * client registered over gRPC or HTTP (Triton's system shared memory).
 * The client can ftruncate() it at any moment; a load or store on a page
 * past the object's new end then raises SIGBUS, whose default action
 * would kill the broker and every other client's requests with it.
 * Checking the size first (fstat) only narrows the window.
 *
 * So each copy of such memory runs under a recovery point, as Wayland
 * compositors do for wl_shm buffers: the copying thread records a
 * sigjmp_buf and the range it copies in thread-local storage, and the
 * SIGBUS handler, when the faulting thread is inside a guarded copy and
 * the faulting address lies in the guarded range, jumps back to it; the
 * copy returns -EFAULT and its caller fails that one request.  A SIGBUS
 * anywhere else is not ours: the handler puts back the disposition it
 * found (the default: terminate with a core) and returns, so the faulting
 * instruction runs again and takes it; a SIGBUS sent with kill() is
 * raised again.
 *
 * Why jumping out is safe here: the only code between sigsetjmp and the
 * fault is memcpy over plain memory, which holds no lock and allocates
 * nothing; the handler itself touches only the thread's own TLS (the
 * initial-exec model, so reading it cannot allocate).  SA_NODEFER keeps
 * SIGBUS unblocked while the handler runs, so siglongjmp with a mask that
 * was not saved (sigsetjmp(env, 0), no system call per copy) leaves the
 * thread's mask as it was: a second truncation is caught like the first.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "shm/fshm.h"

/* The calling thread's recovery point: set only inside fshm_guard_copy. */
struct fshm__guard {
	sigjmp_buf *env;                /* NULL outside a guarded copy */
	uintptr_t lo[2], hi[2];         /* the ranges copied: [lo, hi) */
};

static __thread struct fshm__guard fshm__guard __attribute__((tls_model("initial-exec")));

static pthread_once_t fshm__guard_once = PTHREAD_ONCE_INIT;
static int fshm__guard_err;             /* set once, by the once routine */
static struct sigaction fshm__guard_prev; /* what SIGBUS did before us */
static _Atomic uint64_t fshm__guard_caught;

static bool fshm__guard_ours(const struct fshm__guard *g, uintptr_t a)
{
	for (int i = 0; i < 2; i++)
		if (a >= g->lo[i] && a < g->hi[i])
			return true;
	return false;
}

static void fshm__guard_handler(int sig, siginfo_t *si, void *uc)
{
	struct fshm__guard *g = &fshm__guard;

	if (g->env && si && si->si_code > 0 && fshm__guard_ours(g, (uintptr_t)si->si_addr)) {
		sigjmp_buf *env = g->env;
		g->env = NULL;
		atomic_fetch_add_explicit(&fshm__guard_caught, 1, memory_order_relaxed);
		siglongjmp(*env, 1);
	}
	/* Not a fault of a guarded copy: a bug, or a signal sent to us.
	 * Whoever handled SIGBUS before us (or the default action) gets it. */
	if ((fshm__guard_prev.sa_flags & SA_SIGINFO) && fshm__guard_prev.sa_sigaction) {
		fshm__guard_prev.sa_sigaction(sig, si, uc);
		return;
	}
	if (fshm__guard_prev.sa_handler != SIG_DFL && fshm__guard_prev.sa_handler != SIG_IGN) {
		fshm__guard_prev.sa_handler(sig);
		return;
	}
	sigaction(SIGBUS, &fshm__guard_prev, NULL);
	/* A fault re-executes and takes the default action; a signal sent
	 * by kill() or sigqueue() (si_code <= 0) would be lost: raise it. */
	if (!si || si->si_code <= 0)
		raise(sig);
}

static void fshm__guard_setup(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fshm__guard_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &fshm__guard_prev))
		fshm__guard_err = -errno;
}

int fshm_guard_init(void)
{
	pthread_once(&fshm__guard_once, fshm__guard_setup);
	return fshm__guard_err;
}

uint64_t fshm_guard_caught(void)
{
	return atomic_load_explicit(&fshm__guard_caught, memory_order_relaxed);
}

int fshm_guard_copy(void *dst, const void *src, size_t n)
{
	struct fshm__guard *g = &fshm__guard;
	sigjmp_buf env;
	int ret;

	if (!n)
		return 0;
	if ((ret = fshm_guard_init()))
		return ret;
	if (g->env)                     /* never nested: one recovery point */
		return -EBUSY;
	g->lo[0] = (uintptr_t)dst;
	g->hi[0] = (uintptr_t)dst + n;
	g->lo[1] = (uintptr_t)src;
	g->hi[1] = (uintptr_t)src + n;
	if (sigsetjmp(env, 0)) {
		/* Back from the handler, which cleared g->env. */
		return -EFAULT;
	}
	/* The handler reads g->env on this thread: a compiler barrier is
	 * enough to order the store before the copy and the clear after. */
	g->env = &env;
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(dst, src, n);
	atomic_signal_fence(memory_order_seq_cst);
	g->env = NULL;
	return 0;
}
