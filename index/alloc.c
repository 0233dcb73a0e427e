/* alloc.c -- the allocation seam, with failure injection for tests. */
#define _GNU_SOURCE /* mremap */
#include "paidan/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static long fail_countdown = -1; /* < 0: injection off */

static int should_fail(void) {
    if (fail_countdown < 0) return 0;
    if (fail_countdown == 0) return 1;
    fail_countdown--;
    return 0;
}

void pd_alloc_fail_after(long n) {
    fail_countdown = n;
}

void *pd_malloc(size_t n) {
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *pd_calloc(size_t count, size_t size) {
    if (should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *pd_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

/* Bytes of the whole pages a big array of n bytes maps. */
static size_t big_bytes(size_t n) {
    static size_t page;
    if (!page) {
        long p = sysconf(_SC_PAGESIZE);
        page = p > 0 ? (size_t)p : 4096;
    }
    if (n == 0) n = 1;
    return n > SIZE_MAX - page ? SIZE_MAX : (n + page - 1) & ~(page - 1);
}

#define HUGE_MIN ((size_t)4 << 20)
#define HUGE_PAGE ((uintptr_t)2 << 20)

/* Huge pages for a big array from 4 MiB on, asked for on the whole
 * mapping: advice on part of it would split it into two mappings, and
 * mremap refuses to grow a range that spans more than one. */
static void big_advise(void *p, size_t b) {
#ifdef MADV_HUGEPAGE
    if (b >= HUGE_MIN) (void)madvise(p, b, MADV_HUGEPAGE);
#else
    (void)p;
    (void)b;
#endif
}

/* b bytes of fresh zero memory; from HUGE_MIN on starting at a 2 MiB
 * boundary, so whole huge pages fit from the first byte, and a growth
 * (below) moves them as they are instead of splitting them. */
static void *big_map(size_t b) {
    size_t span = b >= HUGE_MIN ? b + HUGE_PAGE : b;
    if (span < b) return NULL;
    char *r = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) return NULL;
    if (span == b) return r;
    uintptr_t lo = (uintptr_t)r, a = (lo + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), end = lo + span;
    if (a > lo) (void)munmap(r, a - lo);
    if (end > a + b) (void)munmap((void *)(a + b), end - (a + b));
    return (void *)a;
}

void *pd_big_alloc(size_t n) {
    if (should_fail()) return NULL;
    size_t b = big_bytes(n);
    if (b == SIZE_MAX) return NULL;
    void *p = big_map(b);
    if (p) big_advise(p, b);
    return p;
}

void *pd_big_grow(void *p, size_t old_n, size_t new_n) {
    if (!p) return pd_big_alloc(new_n);
    if (should_fail()) return NULL;
    size_t a = big_bytes(old_n), b = big_bytes(new_n);
    if (b == SIZE_MAX) return NULL;
    if (b <= a) return p;
    void *q;
    if (b < HUGE_MIN) {
        q = mremap(p, a, b, MREMAP_MAYMOVE);
    } else {
        /* onto a fresh aligned range: the old pages move there (whole
         * huge pages by their page-table entries), the rest stays zero */
        void *dst = big_map(b);
        if (!dst) return NULL;
        q = mremap(p, a, b, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
        if (q == MAP_FAILED) (void)munmap(dst, b);
    }
    if (q == MAP_FAILED) return NULL;
    big_advise(q, b);
    return q;
}

void pd_big_free(void *p, size_t n) {
    if (p) (void)munmap(p, big_bytes(n));
}

void pd_alloc_advise_huge(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    if (!p || n < HUGE_MIN) return;
    uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    uintptr_t end = ((uintptr_t)p + n) & ~(HUGE_PAGE - 1);
    if (end > a) (void)madvise((void *)a, end - a, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

#if defined(__linux__) && !defined(MADV_COLLAPSE)
#define MADV_COLLAPSE 25 /* Linux 6.1; glibc 2.36's headers predate it */
#endif

bool pd_alloc_collapse_huge(const void *p) {
#ifdef MADV_COLLAPSE
    uintptr_t a = (uintptr_t)p & ~(HUGE_PAGE - 1);
    return madvise((void *)a, HUGE_PAGE, MADV_COLLAPSE) == 0;
#else
    (void)p;
    return false;
#endif
}

void pd_free(void *p) {
    free(p);
}

/* jemalloc's control interface, when jemalloc is the allocator (every
 * paidan binary but the sanitizer builds): weak, so it is NULL otherwise. */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));

void pd_alloc_release_free(void) {
    /* 4096 is MALLCTL_ARENAS_ALL: every arena. */
    if (mallctl) (void)mallctl("arena.4096.purge", NULL, NULL, NULL, 0);
}
