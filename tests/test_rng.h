/* test_rng.h -- a seeded generator for the tests (xoshiro256**), and the
 * seed rule: PD_SEED from the environment replays a run, otherwise the
 * seed is fixed per build so CI is repeatable. Tests print the seed. */
#ifndef PAIDAN_TESTS_RNG_H
#define PAIDAN_TESTS_RNG_H

#include <stdint.h>
#include <stdlib.h>

typedef struct pd_rng_s {
    uint64_t s[4];
} pd_rng_t;

static inline uint64_t pd__rng_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static inline void pd_rng_seed(pd_rng_t *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) { /* splitmix64 fills the state */
        uint64_t z = (seed += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        r->s[i] = z ^ (z >> 31);
    }
}

static inline uint64_t pd_rng_next(pd_rng_t *r) {
    uint64_t *s = r->s;
    uint64_t out = pd__rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = pd__rng_rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t pd_rng_below(pd_rng_t *r, uint64_t n) {
    return n ? pd_rng_next(r) % n : 0;
}

/* Uniform in [lo, hi]. */
static inline int64_t pd_rng_range(pd_rng_t *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)pd_rng_below(r, (uint64_t)(hi - lo) + 1);
}

/* Uniform in [0, 1). */
static inline double pd_rng_unit(pd_rng_t *r) {
    return (double)(pd_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline uint64_t pd_test_seed(void) {
    const char *e = getenv("PD_SEED");
    return e ? strtoull(e, NULL, 0) : 20261126ULL;
}

#endif /* PAIDAN_TESTS_RNG_H */
