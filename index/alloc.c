/* alloc.c -- the allocation seam, with failure injection for tests. */
#include "paidan/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

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

#define HUGE_MIN ((size_t)4 << 20)
#define HUGE_PAGE ((uintptr_t)2 << 20)

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
