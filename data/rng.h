/* rng.h -- the seeded PRNG of data/ and the little math it needs to give
 * bit-identical output on every machine.
 *
 * Private to data/. The generator is xoshiro256** seeded through
 * splitmix64: fast, small state, and fully specified, unlike rand(). A
 * generator draws from several independent streams (layout, volunteers,
 * orders, query points), each seeded from (seed, stream), so drawing from
 * one never shifts the numbers of another.
 *
 * libm's log/exp/cos are not guaranteed to round the same way on every
 * platform, and one ulp is enough to move a coordinate by a micro-degree.
 * pd__log, pd__exp and pd__cos use only + - * /, frexp/ldexp and floor,
 * which IEEE 754 defines exactly; data/ is compiled with
 * -ffp-contract=off so no fused multiply-add changes a rounding.
 */
#ifndef PAIDAN_DATA_RNG_H
#define PAIDAN_DATA_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct pd__rng_s {
    uint64_t s[4]; /* xoshiro256** state, never all zero */
} pd__rng_t;

/* Seed a stream: the state is four splitmix64 outputs from a start value
 * mixed from seed and stream, so (seed, stream) pairs never collide in
 * practice and seed 0 is as good as any other. */
void pd__rng_seed(pd__rng_t *r, uint64_t seed, uint64_t stream);

static inline uint64_t pd__rng_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* Next 64 random bits (xoshiro256**). */
static inline uint64_t pd__rng_next(pd__rng_t *r) {
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

/* Uniform double in [0, 1), 53 random bits. */
static inline double pd__rng_uniform(pd__rng_t *r) {
    return (double)(pd__rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n), n >= 1, without modulo bias (Lemire's
 * multiply-and-reject). */
uint64_t pd__rng_below(pd__rng_t *r, uint64_t n);

/* True with probability p. */
static inline int pd__rng_chance(pd__rng_t *r, double p) {
    return pd__rng_uniform(r) < p;
}

/* Standard normal deviate (Marsaglia's polar method over pd__log). */
double pd__rng_gauss(pd__rng_t *r);

/* Index i in [0, n) drawn with probability proportional to the weights
 * whose running sums are cum[0..n-1] (cum[n-1] is the total, > 0). */
size_t pd__rng_pick(pd__rng_t *r, const double *cum, size_t n);

/* Natural logarithm of a finite x > 0; relative error below 1e-15. */
double pd__log(double x);
/* e^x for x in [-700, 700]; relative error below 1e-15. */
double pd__exp(double x);
/* Cosine of x in [-pi/2, pi/2]; absolute error below 1e-16. */
double pd__cos(double x);

#endif /* PAIDAN_DATA_RNG_H */
