/* test_alloc.c -- the big arrays of the allocation seam: grown in place
 * by the kernel, contents kept, new room zero, through the 4 MiB size at
 * which huge pages are asked for. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "paidan/alloc.h"

static uint64_t pattern(size_t i) {
    return i * 0x9E3779B97F4A7C15ULL + 1;
}

/* From 1,000 bytes to 64 MB, doubling (sizes that are not whole huge
 * pages, as the engine's 80-byte records make): every word written before
 * a growth is still there after it, every word after the old end is zero. */
Test(alloc, big_array_grows_and_keeps_its_contents) {
    size_t n = 1000;
    uint64_t *a = pd_big_alloc(n);
    cr_assert_not_null(a);
    for (size_t i = 0; i < n / 8; i++) cr_assert_eq(a[i], 0);
    for (size_t i = 0; i < n / 8; i++) a[i] = pattern(i);
    while (n < (size_t)64000000) {
        size_t m = n * 2;
        uint64_t *b = pd_big_grow(a, n, m);
        cr_assert_not_null(b, "growing %zu to %zu bytes failed", n, m);
        for (size_t i = 0; i < n / 8; i++)
            cr_assert_eq(b[i], pattern(i), "word %zu lost growing %zu to %zu bytes", i, n, m);
        for (size_t i = n / 8; i < m / 8; i++) cr_assert_eq(b[i], 0);
        for (size_t i = n / 8; i < m / 8; i++) b[i] = pattern(i);
        a = b;
        n = m;
    }
    /* shrinking is not growing: the array stays as it is */
    cr_assert_eq(pd_big_grow(a, n, n / 2), a);
    pd_big_free(a, n);
}

/* A failed growth (injected) leaves the array as it was and usable. */
Test(alloc, big_array_failed_growth_keeps_the_array) {
    size_t n = ((size_t)8 << 20) + 12344;
    uint64_t *a = pd_big_alloc(n);
    cr_assert_not_null(a);
    for (size_t i = 0; i < n / 8; i += 512) a[i] = pattern(i);
    pd_alloc_fail_after(0);
    cr_assert_null(pd_big_grow(a, n, 2 * n));
    cr_assert_null(pd_big_alloc(16));
    pd_alloc_fail_after(-1);
    for (size_t i = 0; i < n / 8; i += 512) cr_assert_eq(a[i], pattern(i));
    uint64_t *b = pd_big_grow(a, n, 2 * n);
    cr_assert_not_null(b);
    for (size_t i = 0; i < n / 8; i += 512) cr_assert_eq(b[i], pattern(i));
    pd_big_free(b, 2 * n);
    pd_big_free(NULL, 0);
}
