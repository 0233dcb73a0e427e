/* rng.c -- xoshiro256** streams, unbiased integers, normal deviates and
 * weighted picks, plus the deterministic log/exp/cos they rest on.
 *
 * The series below are plain Taylor/atanh expansions over a reduced
 * argument. They are not the fastest possible, but every operation in
 * them is exactly specified by IEEE 754, so a seed produces the same
 * county on every machine and compiler that honours -ffp-contract=off.
 */
#include "rng.h"

#include <math.h>

/* ---------------------------------------------------------------- seeds */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void pd__rng_seed(pd__rng_t *r, uint64_t seed, uint64_t stream) {
    /* Mix the stream number through one splitmix64 round of its own
     * before adding, so stream k of seed s and stream k+1 of seed s-1 do
     * not start from neighbouring values. */
    uint64_t st = stream;
    uint64_t x = seed ^ splitmix64(&st);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) r->s[0] = 1;
}

/* ------------------------------------------------------------- integers */

uint64_t pd__rng_below(pd__rng_t *r, uint64_t n) {
    unsigned __int128 m = (unsigned __int128)pd__rng_next(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t threshold = (0 - n) % n;
        while (lo < threshold) {
            m = (unsigned __int128)pd__rng_next(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

size_t pd__rng_pick(pd__rng_t *r, const double *cum, size_t n) {
    double u = pd__rng_uniform(r) * cum[n - 1];
    size_t lo = 0, hi = n - 1;
    /* First index whose running sum exceeds u. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ----------------------------------------------------------------- math */

#define LN2 0.69314718055994530942
/* ln 2 split Cody-Waite style: LN2_HI has its low bits zero, so k * LN2_HI
 * is exact for the |k| < 2^11 used here. */
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10
#define SQRT1_2 0.70710678118654752440

double pd__log(double x) {
    int e;
    double m = frexp(x, &e); /* x = m * 2^e, m in [0.5, 1) */
    if (m < SQRT1_2) {
        m *= 2.0;
        e -= 1;
    }
    /* ln m = 2 atanh(t), t = (m-1)/(m+1), |t| <= 0.1716, so t^2 < 0.0295
     * and twelve terms of the odd series reach double precision. */
    double t = (m - 1.0) / (m + 1.0);
    double t2 = t * t;
    double p = 1.0 / 23.0;
    for (int k = 10; k >= 0; k--) p = p * t2 + 1.0 / (double)(2 * k + 1);
    return (double)e * LN2_HI + ((double)e * LN2_LO + 2.0 * t * p);
}

double pd__exp(double x) {
    if (x < -745.0) return 0.0;
    if (x > 709.0) x = 709.0;
    /* x = k ln2 + r with |r| <= ln2/2; e^r by Taylor to r^16/16!. */
    double k = floor(x / LN2 + 0.5);
    double rr = (x - k * LN2_HI) - k * LN2_LO;
    double p = 1.0;
    for (int i = 16; i >= 1; i--) p = 1.0 + p * rr / (double)i;
    return ldexp(p, (int)k);
}

double pd__cos(double x) {
    /* Taylor to x^22/22!; (pi/2)^24/24! < 1e-17. */
    double x2 = x * x;
    double p = 1.0;
    for (int i = 11; i >= 1; i--) p = 1.0 - p * x2 / (double)((2 * i) * (2 * i - 1));
    return p;
}

/* -------------------------------------------------------------- normals */

double pd__rng_gauss(pd__rng_t *r) {
    for (;;) {
        double u = 2.0 * pd__rng_uniform(r) - 1.0;
        double v = 2.0 * pd__rng_uniform(r) - 1.0;
        double s = u * u + v * v;
        if (s > 0.0 && s < 1.0) return u * sqrt(-2.0 * pd__log(s) / s);
    }
}
