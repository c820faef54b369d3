/*
 * rng.c - the seeded random generator of the PAD trainer (splitmix64). Training draws every random
 * choice (fold assignment, weight initialisation, sample order) from here so that one seed gives a
 * byte-identical model file on any machine and any libc (rand() differs between platforms).
 */
#include <math.h>

#include "pad/pad.h"

void pad_rng_seed(pad_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull; }

uint64_t pad_rng_next(pad_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double pad_rng_uniform(pad_rng *r) { return (double)(pad_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

double pad_rng_normal(pad_rng *r) {
    /* 1 - u keeps the log argument in (0, 1] */
    const double u = 1.0 - pad_rng_uniform(r), v = pad_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

void pad_rng_shuffle(pad_rng *r, int *v, int n) {
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)(pad_rng_next(r) % (uint64_t)(i + 1));
        const int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}
