/*
 * Exact HMM recursions in float64 for a padded batch of sequences with one
 * transition matrix shared by every sequence and step (the native CPU path of
 * probmodels.hmm.ops; compiled and loaded by probmodels/hmm/native/build.py).
 *
 * Plain C99, no Python or torch headers. Every array is C-contiguous:
 *   log_init (n, k) with row stride init_stride (0: one row for all),
 *   log_trans (k, k), row i = from state i,
 *   log_emit (n, t_max, k), lengths (n) in [1, t_max] or NULL (all t_max).
 * Instead of log_emit (NULL) the emission log-likelihoods may be linear in
 * per-step features, computed step by step without an (n, t_max, k) array:
 *   log_emit[s, t, :] = features[s, t, :] @ weights + bias,
 *   features (n, t_max, f), weights (f, k), bias (k).
 *
 * The forward and backward recursions run in probability space, as
 * hmmlearn's "scaling" implementation: each step's emission likelihoods are
 * exponentiated after subtracting their maximum over the states, every
 * vector is rescaled (by the previous vector's sum), and the logs of the
 * scales (plus the subtracted maxima) add up to the log-likelihood. Exact
 * zeros stay exact.
 * A sequence whose vector sums to 0 at some step (impossible, or one step's
 * probability below the smallest double) is flagged in failed[] and its
 * outputs are zeros: the caller recomputes it in log space. Viterbi runs in
 * log space (max-plus, no exponentials), keeps every step's maxima instead of
 * backpointers and flags nothing. Ties go to the lower state index.
 *
 * Inner loops run over the destination state with the source state outside
 * (axpy form), so the compiler vectorises them without reassociating sums;
 * the per-sequence functions are inlined into one copy for each small number
 * of states (FOR_EACH_K) and a generic one, and the emission
 * likelihoods use a branch-free exponential that vectorises (exp_nonpositive).
 * Return value: the number of flagged sequences, or -1 when memory runs out.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

/* Where the emission log-likelihoods come from (see the top of the file). */
typedef struct {
    const double *log_emit, *features, *weights, *bias;
    int64_t n_features, t_max;
} Emission;

/* The k emission log-likelihoods of step t of sequence s: a row of log_emit, or computed into row. */
INLINE const double *emission_row(const Emission *em, int64_t k, int64_t s, int64_t t, double *restrict row)
{
    const int64_t step = s * em->t_max + t;
    if (em->log_emit)
        return em->log_emit + step * k;
    const double *restrict x = em->features + step * em->n_features;
    for (int64_t j = 0; j < k; j++)
        row[j] = em->bias[j];
    for (int64_t f = 0; f < em->n_features; f++) {
        const double xf = x[f];
        const double *restrict w = em->weights + f * k;
        for (int64_t j = 0; j < k; j++)
            row[j] += xf * w[j];
    }
    return row;
}

/* One instance of the kernel body for each of 2, 3 and 4 states (there a compile-time k, which
 * unrolls the short loops, measured 1.1-2 times faster), and a generic one (faster from 8 states). */
#define FOR_EACH_K(call)                                                                                               \
    switch (k) {                                                                                                       \
    case 2: return call(2);                                                                                            \
    case 3: return call(3);                                                                                            \
    case 4: return call(4);                                                                                            \
    default: return call(k);                                                                                           \
    }

/*
 * exp(x) for x <= 0 or -inf, to about 1 ulp, and 0 below -708 (under the
 * smallest normal double, 2.2e-308, where a likelihood ratio within one step
 * no longer matters; a step that needs one sums to 0 and is flagged). Cody-Waite
 * reduction x = n ln2 + r, |r| <= ln2 / 2, a degree-13 Taylor polynomial for
 * exp(r) (truncation below 1e-17), and 2^n built in the exponent bits.
 */
INLINE double exp_nonpositive(double x)
{
    const double shifter = 0x1.8p52, clamped = x < -708.0 ? -708.0 : x;
    const double t = clamped * 0x1.71547652b82fep0 + shifter; /* log2(e) x, rounded to an integer in the low bits */
    const double n = t - shifter;
    const double r = (clamped - n * 0x1.62e42fee00000p-1) - n * 0x1.a39ef35793c76p-33; /* ln2 high and low parts */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t bits, shifter_bits;
    memcpy(&bits, &t, sizeof bits);
    memcpy(&shifter_bits, &shifter, sizeof shifter_bits);
    bits = (bits - shifter_bits + 1023u) << 52; /* 2^n */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -708.0 ? 0.0 : p * scale;
}

/* The maximum and the sum of x[0..k), in four interleaved lanes that vectorise (and shorten the chain of adds). */
INLINE double max_of(int64_t k, const double *x)
{
    double m0 = x[0], m1 = x[0], m2 = x[0], m3 = x[0];
    int64_t j = 0;
    for (; j + 4 <= k; j += 4) {
        m0 = x[j] > m0 ? x[j] : m0;
        m1 = x[j + 1] > m1 ? x[j + 1] : m1;
        m2 = x[j + 2] > m2 ? x[j + 2] : m2;
        m3 = x[j + 3] > m3 ? x[j + 3] : m3;
    }
    for (; j < k; j++)
        m0 = x[j] > m0 ? x[j] : m0;
    m0 = m1 > m0 ? m1 : m0;
    m2 = m3 > m2 ? m3 : m2;
    return m2 > m0 ? m2 : m0;
}

INLINE double sum_of(int64_t k, const double *x)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t j = 0;
    for (; j + 4 <= k; j += 4) {
        s0 += x[j];
        s1 += x[j + 1];
        s2 += x[j + 2];
        s3 += x[j + 3];
    }
    for (; j < k; j++)
        s0 += x[j];
    return (s0 + s1) + (s2 + s3);
}

/* exp(log_trans - shift) into probs (k, k) and its transpose; returns the
 * shift (the largest entry, 0 when all are -inf), so entries above 0 cannot overflow. */
static double transition_probs(int64_t k, const double *log_trans, double *probs, double *probs_t)
{
    double shift = -INFINITY;
    for (int64_t i = 0; i < k * k; i++)
        shift = log_trans[i] > shift ? log_trans[i] : shift;
    if (shift == -INFINITY)
        shift = 0.0;
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) {
            double p = exp(log_trans[i * k + j] - shift);
            probs[i * k + j] = p;
            if (probs_t)
                probs_t[j * k + i] = p;
        }
    return shift;
}

/*
 * The scaled forward pass over one sequence of len steps. Each vector is
 * divided by the sum of the previous one (its own sum then is the step's
 * conditional likelihood, which is at most k and underflows only where that
 * does): the division stays off the chain of dependent steps, and the
 * log-likelihood is the sum of the logs of the sums. With store, alpha
 * (len, k) keeps every vector, emit (len, k) the shifted emission likelihoods
 * and scales (len) the sums; otherwise alpha is a (2, k) ring and emit one
 * row. Returns 1 to flag the sequence, 0 with *loglik set.
 */
INLINE int forward_sequence(int64_t k, int64_t len, const double *log_init, const double *trans, double trans_shift,
                            const Emission *em, int64_t s, double *row, int store, double *alpha, double *emit,
                            double *scales, double *loglik)
{
    double init_shift = max_of(k, log_init);
    double total = 0.0, product = 1.0; /* log-likelihood = total + log(product): one log per ~100 steps */
    double inv_previous = 1.0;
    if (init_shift == -INFINITY) {
        *loglik = -INFINITY;
        return 0;
    }
    for (int64_t t = 0; t < len; t++) {
        const double *le = emission_row(em, k, s, t, row);
        double *restrict e = store ? emit + t * k : emit;
        double *restrict cur = store ? alpha + t * k : alpha + (t & 1) * k;
        double top = max_of(k, le);
        if (top == -INFINITY) {
            *loglik = -INFINITY;
            return 0;
        }
        for (int64_t j = 0; j < k; j++)
            e[j] = exp_nonpositive(le[j] - top);
        if (t == 0) {
            for (int64_t j = 0; j < k; j++)
                cur[j] = exp(log_init[j] - init_shift) * e[j];
        } else {
            const double *restrict prev = store ? alpha + (t - 1) * k : alpha + ((t - 1) & 1) * k;
            memset(cur, 0, (size_t)k * sizeof(double));
            int64_t i = 0;
            for (; i + 4 <= k; i += 4) { /* four rows per pass over cur: a quarter of its loads and stores */
                const double p0 = prev[i], p1 = prev[i + 1], p2 = prev[i + 2], p3 = prev[i + 3];
                const double *restrict r0 = trans + i * k, *restrict r1 = r0 + k, *restrict r2 = r1 + k, *restrict r3 = r2 + k;
                for (int64_t j = 0; j < k; j++)
                    cur[j] += (p0 * r0[j] + p1 * r1[j]) + (p2 * r2[j] + p3 * r3[j]);
            }
            for (; i < k; i++) {
                const double p = prev[i];
                const double *restrict row = trans + i * k;
                for (int64_t j = 0; j < k; j++)
                    cur[j] += p * row[j];
            }
            for (int64_t j = 0; j < k; j++)
                cur[j] *= e[j] * inv_previous;
        }
        const double sum = sum_of(k, cur);
        if (!(sum > 0.0))
            return 1;
        inv_previous = 1.0 / sum;
        if (store)
            scales[t] = sum;
        total += top;
        product *= sum;
        if (product < 0x1p-900 || product > 0x1p900) {
            total += log(product);
            product = 1.0;
        }
    }
    *loglik = total + log(product) + init_shift + (double)(len - 1) * trans_shift;
    return 0;
}

/* counts (k, k) += norm * outer(a, v) */
INLINE void add_outer(int64_t k, const double *restrict a, double norm, const double *restrict v,
                      double *restrict counts)
{
    for (int64_t i = 0; i < k; i++) {
        const double w = a[i] * norm;
        double *restrict row = counts + i * k;
        for (int64_t j = 0; j < k; j++)
            row[j] += w * v[j];
    }
}

/*
 * The backward pass after a stored forward pass: turns alpha (len, k) into
 * the posterior marginals in place and, if counts is not NULL, adds the
 * expected transition counts divided by the transition probabilities
 * (the caller multiplies them in). Each beta is divided by the sum of the
 * next one, as in the forward pass. beta, v, next: k doubles each.
 */
INLINE int backward_sequence(int64_t k, int64_t len, const double *trans_t, double *alpha, const double *emit,
                             const double *scales, double *counts, double *beta, double *v, double *next)
{
    for (int64_t j = 0; j < k; j++)
        beta[j] = 1.0;
    for (int64_t u = len - 1; u >= 0; u--) {
        double *restrict g = alpha + u * k;
        for (int64_t j = 0; j < k; j++)
            g[j] *= beta[j];
        const double sum = sum_of(k, g);
        if (!(sum > 0.0))
            return 1;
        const double inv = 1.0 / sum;
        for (int64_t j = 0; j < k; j++)
            g[j] *= inv;
        if (u == 0)
            break;
        const double beta_sum = sum_of(k, beta);
        const double *restrict e = emit + u * k;
        for (int64_t j = 0; j < k; j++)
            v[j] = e[j] * beta[j];
        if (counts) /* xi(i, j) = alpha_{u-1}(i) trans(i, j) v(j) / (scales[u-1] * sum) */
            add_outer(k, alpha + (u - 1) * k, 1.0 / (scales[u - 1] * sum), v, counts);
        memset(next, 0, (size_t)k * sizeof(double));
        int64_t j = 0;
        for (; j + 4 <= k; j += 4) {
            const double v0 = v[j], v1 = v[j + 1], v2 = v[j + 2], v3 = v[j + 3];
            const double *restrict c0 = trans_t + j * k, *restrict c1 = c0 + k, *restrict c2 = c1 + k, *restrict c3 = c2 + k;
            for (int64_t i = 0; i < k; i++)
                next[i] += (c0[i] * v0 + c1[i] * v1) + (c2[i] * v2 + c3[i] * v3);
        }
        for (; j < k; j++) {
            const double vj = v[j];
            const double *restrict col = trans_t + j * k;
            for (int64_t i = 0; i < k; i++)
                next[i] += col[i] * vj;
        }
        const double scale = 1.0 / beta_sum;
        for (int64_t i = 0; i < k; i++)
            beta[i] = next[i] * scale;
    }
    return 0;
}

static int64_t length_of(const int64_t *lengths, int64_t s, int64_t t_max)
{
    return lengths ? lengths[s] : t_max;
}

INLINE int64_t log_likelihood_batch(int64_t n, int64_t t_max, int64_t k, const double *log_init, int64_t init_stride,
                                    const double *log_trans, const Emission *em, const int64_t *lengths,
                                    double *loglik, uint8_t *failed)
{
    double *work = malloc((size_t)(k * k + 4 * k) * sizeof(double));
    if (!work)
        return -1;
    double *trans = work, *alpha = work + k * k, *emit = alpha + 2 * k, *row = emit + k;
    const double shift = transition_probs(k, log_trans, trans, NULL);
    int64_t flagged = 0;
    for (int64_t s = 0; s < n; s++) {
        failed[s] = (uint8_t)forward_sequence(k, length_of(lengths, s, t_max), log_init + s * init_stride, trans, shift,
                                              em, s, row, 0, alpha, emit, NULL, &loglik[s]);
        if (failed[s])
            loglik[s] = 0.0;
        flagged += failed[s];
    }
    free(work);
    return flagged;
}

INLINE int64_t smooth_batch(int64_t n, int64_t t_max, int64_t k, const double *log_init, int64_t init_stride,
                            const double *log_trans, const Emission *em, const int64_t *lengths, double *loglik,
                            double *marginals, double *counts, uint8_t *failed)
{
    double *work = malloc((size_t)(2 * k * k + 4 * k + t_max * (k + 1)) * sizeof(double));
    if (!work)
        return -1;
    double *trans = work, *trans_t = trans + k * k, *beta = trans_t + k * k, *v = beta + k, *next = v + k;
    double *row = next + k, *scales = row + k, *emit = scales + t_max;
    const double shift = transition_probs(k, log_trans, trans, trans_t);
    int64_t flagged = 0;
    for (int64_t s = 0; s < n; s++) {
        const int64_t len = length_of(lengths, s, t_max);
        double *gamma = marginals + s * t_max * k;
        double *xi = counts ? counts + s * k * k : NULL;
        if (xi)
            memset(xi, 0, (size_t)(k * k) * sizeof(double));
        int bad = forward_sequence(k, len, log_init + s * init_stride, trans, shift, em, s, row, 1, gamma, emit, scales,
                                   &loglik[s]);
        int possible = !bad && loglik[s] > -INFINITY;
        if (possible)
            bad = backward_sequence(k, len, trans_t, gamma, emit, scales, xi, beta, v, next);
        if (bad || !possible) {
            memset(gamma, 0, (size_t)(len * k) * sizeof(double));
            if (xi)
                memset(xi, 0, (size_t)(k * k) * sizeof(double));
        }
        if (bad)
            loglik[s] = 0.0;
        if (xi && possible && !bad)
            for (int64_t i = 0; i < k * k; i++)
                xi[i] *= trans[i];
        memset(gamma + len * k, 0, (size_t)((t_max - len) * k) * sizeof(double));
        failed[s] = (uint8_t)bad;
        flagged += bad;
    }
    free(work);
    return flagged;
}

/* The first argmax over i of delta[i] + log_trans[i, j] (ties to the lower i): a predecessor on a best path. */
INLINE int64_t best_predecessor(int64_t k, const double *delta, const double *log_trans, int64_t j)
{
    int64_t best = 0;
    double top = delta[0] + log_trans[j];
    for (int64_t i = 1; i < k; i++) {
        const double candidate = delta[i] + log_trans[i * k + j];
        best = candidate > top ? i : best;
        top = candidate > top ? candidate : top;
    }
    return best;
}

INLINE int64_t viterbi_batch(int64_t n, int64_t t_max, int64_t k, const double *log_init, int64_t init_stride,
                             const double *log_trans, const Emission *em, const int64_t *lengths, double *log_prob,
                             int64_t *path)
{
    /* The max-only forward pass keeps every step's delta (t_max, k); the backtrack
     * recomputes one argmax per step along the path instead of storing backpointers. */
    double *deltas = malloc((size_t)((t_max + 1) * k) * sizeof(double)), *row = deltas + t_max * k;
    if (!deltas)
        return -1;
    for (int64_t s = 0; s < n; s++) {
        const int64_t len = length_of(lengths, s, t_max);
        const double *init = log_init + s * init_stride, *first = emission_row(em, k, s, 0, row);
        int64_t *out = path + s * t_max;
        for (int64_t j = 0; j < k; j++)
            deltas[j] = init[j] + first[j];
        for (int64_t t = 1; t < len; t++) {
            const double *restrict prev = deltas + (t - 1) * k;
            double *restrict best = deltas + t * k;
            for (int64_t j = 0; j < k; j++)
                best[j] = -INFINITY;
            int64_t i = 0;
            for (; i + 4 <= k; i += 4) { /* maxima are exact in any order: four rows per pass over best */
                const double d0 = prev[i], d1 = prev[i + 1], d2 = prev[i + 2], d3 = prev[i + 3];
                const double *restrict r0 = log_trans + i * k, *restrict r1 = r0 + k, *restrict r2 = r1 + k,
                                       *restrict r3 = r2 + k;
                for (int64_t j = 0; j < k; j++) {
                    const double a = d0 + r0[j] > d1 + r1[j] ? d0 + r0[j] : d1 + r1[j];
                    const double b = d2 + r2[j] > d3 + r3[j] ? d2 + r2[j] : d3 + r3[j];
                    const double c = a > b ? a : b;
                    best[j] = c > best[j] ? c : best[j];
                }
            }
            for (; i < k; i++) {
                const double d = prev[i];
                const double *restrict row = log_trans + i * k;
                for (int64_t j = 0; j < k; j++) {
                    const double candidate = d + row[j];
                    best[j] = candidate > best[j] ? candidate : best[j];
                }
            }
            const double *restrict e = emission_row(em, k, s, t, row);
            for (int64_t j = 0; j < k; j++)
                best[j] += e[j];
        }
        const double *last = deltas + (len - 1) * k;
        int64_t state = 0;
        for (int64_t j = 1; j < k; j++)
            state = last[j] > last[state] ? j : state;
        log_prob[s] = last[state];
        memset(out, 0, (size_t)t_max * sizeof(int64_t));
        if (last[state] == -INFINITY)
            continue;
        out[len - 1] = state;
        for (int64_t t = len - 1; t > 0; t--) {
            state = best_predecessor(k, deltas + (t - 1) * k, log_trans, state);
            out[t - 1] = state;
        }
    }
    free(deltas);
    return 0;
}

#define EMISSION const double *log_emit, const double *features, int64_t n_features, const double *weights, const double *bias
#define MAKE_EMISSION const Emission em = {log_emit, features, weights, bias, n_features, t_max}

int64_t hmm_log_likelihood(int64_t n, int64_t t_max, int64_t k, const double *log_init, int64_t init_stride,
                           const double *log_trans, EMISSION, const int64_t *lengths, double *loglik, uint8_t *failed)
{
    MAKE_EMISSION;
#define CALL(states) log_likelihood_batch(n, t_max, states, log_init, init_stride, log_trans, &em, lengths, loglik, failed)
    FOR_EACH_K(CALL)
#undef CALL
}

int64_t hmm_smooth(int64_t n, int64_t t_max, int64_t k, const double *log_init, int64_t init_stride,
                   const double *log_trans, EMISSION, const int64_t *lengths, double *loglik, double *marginals,
                   double *counts, uint8_t *failed)
{
    MAKE_EMISSION;
#define CALL(states)                                                                                                   \
    smooth_batch(n, t_max, states, log_init, init_stride, log_trans, &em, lengths, loglik, marginals, counts, failed)
    FOR_EACH_K(CALL)
#undef CALL
}

int64_t hmm_viterbi(int64_t n, int64_t t_max, int64_t k, const double *log_init, int64_t init_stride,
                    const double *log_trans, EMISSION, const int64_t *lengths, double *log_prob, int64_t *path)
{
    MAKE_EMISSION;
#define CALL(states) viterbi_batch(n, t_max, states, log_init, init_stride, log_trans, &em, lengths, log_prob, path)
    FOR_EACH_K(CALL)
#undef CALL
}
