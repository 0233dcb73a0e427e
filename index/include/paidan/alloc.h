/* alloc.h -- the one allocation seam of paidan.
 *
 * Every allocation in index/ and engine/ goes through these functions. In
 * normal builds they are the system allocator, which is jemalloc in every
 * paidan binary (it is linked in and replaces malloc). Under the sanitizers
 * jemalloc is not linked and ASan's allocator is used instead.
 *
 * Tests inject failures with pd_alloc_fail_after(): the N-th allocation
 * from then on (and every later one) returns NULL, so OOM paths can be
 * exercised deterministically.
 */
#ifndef PAIDAN_ALLOC_H
#define PAIDAN_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** malloc through the seam; NULL on OOM (real or injected). */
void *pd_malloc(size_t n);
/** calloc through the seam; NULL on OOM or overflow. */
void *pd_calloc(size_t count, size_t size);
/** realloc through the seam; on NULL the old block is untouched. */
void *pd_realloc(void *p, size_t n);
/** free through the seam; NULL is fine. */
void pd_free(void *p);

/**
 * A big growable array, for the few that reach hundreds of MB and grow
 * while a server runs (the index's slots, the engine's volunteer
 * records): mapped on its own and grown with mremap, so growing moves
 * page tables rather than bytes, and the new room is zero pages faulted
 * in as it is used. With realloc, growing 10^6 volunteers' slots and
 * records stalled an insert for 100-200 ms. Zeroed; from 4 MiB on backed
 * by transparent huge pages where the kernel allows (the advice covers the
 * whole mapping: do not call pd_alloc_advise_huge on it, which would split
 * the mapping and make it impossible to grow). Pass the same sizes back
 * that were asked for; not for memory from pd_malloc, nor to free with
 * pd_free. Failures are injected as for the others.
 */
void *pd_big_alloc(size_t n);
/** Grow p (old_n bytes, or NULL) to new_n bytes, contents kept, the rest
 * zero; it may move. NULL on failure, p untouched. */
void *pd_big_grow(void *p, size_t old_n, size_t new_n);
/** Unmap a big array of n bytes; NULL is fine. */
void pd_big_free(void *p, size_t n);

/**
 * Ask for transparent huge pages on the whole 2 MiB pages inside [p, p+n),
 * for a large, long-lived array about to be filled (the order map, a
 * restore's buffers; blocks under 4 MiB are left alone; the big arrays
 * below get it on their own). A restore fills some 350 MB of such arrays at once: at 4 KiB
 * a page that is tens of thousands of page faults, a good part of its time
 * (docs/operations.md). Only these arrays: huge pages everywhere (jemalloc
 * thp:always) made restores faster still but doubled the query latency's
 * p99 and the batch case's, and rounded up the resident size. With the
 * kernel's THP mode at "madvise" (Debian's default) this is what turns it
 * on; at "never" it does nothing.
 */
void pd_alloc_advise_huge(void *p, size_t n);

/**
 * Ask the kernel to back the 2 MiB page holding address p with a
 * transparent huge page now (MADV_COLLAPSE, Linux 6.1 and later): the
 * page's present 4 KiB pages are copied into one huge page, and its
 * holes are filled with zeroes, which adds to the resident size. For
 * memory a query reads at random, where a TLB miss costs as much as the
 * read (docs/index.md). Synchronous: a few milliseconds a page.
 * @return false if the kernel did not (too old, THP off, no memory).
 */
bool pd_alloc_collapse_huge(const void *p);

/**
 * Ask the allocator to hand freed memory back to the system now rather
 * than after its decay time (jemalloc: purge every arena; otherwise
 * nothing). For after a bulk job whose temporary buffers are gone (a
 * restore), and before measuring resident memory.
 */
void pd_alloc_release_free(void);

/**
 * Fail allocations from the n-th call on (n = 0 fails the next one);
 * n < 0 disables injection. For tests only; not thread-safe.
 */
void pd_alloc_fail_after(long n);

#ifdef __cplusplus
}
#endif
#endif /* PAIDAN_ALLOC_H */
