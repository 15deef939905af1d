/*
 * cpu.c: the CPU backend. HSA attention exactly as HSA.md states it, in fp32, on a small pool of
 * threads of its own. It owns those threads and nothing else: no cache and no state between calls
 * but two counters; every landmark and K/V is read from the source during the call. It is the
 * oracle that the CUDA backend is tested against, so clarity of the math comes before speed, and
 * speed comes from streaming the landmarks once (converted to f32 in blocks that stay in L1, or in
 * registers on the way into the dot products) rather than from cleverness.
 *
 * One attend() call works through its tokens in groups of up to TOK_GROUP, each in two phases:
 *
 *   1. scoring: the group's visible chunks are cut into ranges (and its tokens into subgroups when
 *      there are few chunks); each piece scores its chunks and keeps a bounded heap of its own best
 *      k per (token, kv head), so no piece waits for another;
 *   2. attention: per (token, kv head) the pieces' heaps are merged into the top-k, weighted,
 *      and the selected chunks are attended to one by one.
 *
 * The pieces of both phases go to the pool. The calling thread works on its own call's pieces too,
 * so a call always makes progress even while the pool's threads serve another caller's call.
 *
 * Invariants:
 *   1. A chunk's score depends only on the chunk and the query, never on which piece scored it, and
 *      the ranking (score, then lower index) is a strict total order: results are bit-identical
 *      whatever the number of threads or the lengths of the source's landmark runs.
 *   2. Scores that are NaN rank as -inf; every visible chunk stays a candidate, whatever its score.
 *
 * The kernels (block conversion, dot products, weighted row sums) come in a portable flavour,
 * written so that gcc -O2 vectorises their fixed-width inner loops, and on x86-64 an AVX2/FMA/F16C
 * flavour that alloc picks when the CPU has it. HSAMEM_CPU_KERNELS=portable in the environment
 * forces the portable one (the tests use it).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define CPU_HAVE_AVX2_PATH 1
#endif

#include "backend.h"
#include "half.h"
#include "hsamem_defs.h"

#define TOK_GROUP        64         /* most tokens scored together, per pass over the landmarks */
#define HEAP_BYTES       (16 << 20) /* the heaps' memory, which may shrink a group */
#define BLOCK_FLOATS     4096       /* rows converted at once: 16 KiB, they stay in L1 */
#define SCORE_MIN_CHUNKS 2048       /* fewest chunks worth a scoring piece of their own */
#define SCORE_MIN_WORK   (1 << 18)  /* fewest landmark elements worth more than one piece */
#define ATTEND_MIN_WORK  (1 << 18)  /* fewest attention multiply-adds worth more than one piece */
#define PREFETCH_BYTES   32768      /* of one chunk's K, and of its V, asked for ahead of use */
#define THREADS_MAX      256

/* ---- kernels ---- */

struct kernels {
	const char *name;
	/* n elements of type t at src to floats at dst. */
	void (*cvt)(enum hsa_dtype t, const void *src, float *dst, size_t n);
	/* out[i] = q . rows[i * ld .. i * ld + d) for i < n_rows. */
	void (*dots)(const float *q, const float *rows, size_t ld, size_t n_rows, size_t d,
	             float *out);
	/*
	 * dots on rows of a 16-bit type, bit-identical to cvt then dots, without the round trip
	 * through memory; NULL where the conversion is not cheap enough to repeat per query.
	 */
	void (*dots16)(enum hsa_dtype t, const float *q, const uint16_t *rows, size_t ld,
	               size_t n_rows, size_t d, float *out);
	/* y[e] += a * sum_i p[i] * rows[i * ld + e] for e < d, i < n_rows. */
	void (*wsum)(const float *p, const float *rows, size_t ld, size_t n_rows, size_t d, float a,
	             float *y);
};

static inline float
f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline uint32_t
f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/*
 * binary16 to float without branches, so that a loop of them vectorises: normal numbers (and
 * inf/NaN) by moving the exponent and mantissa into place and rescaling by 2^-112; subnormals by
 * letting the FPU normalise m * 2^-24 as (0.5 + m * 2^-24) - 0.5.
 */
static inline float
f16_to_f32_branchless(uint16_t h)
{
	uint32_t w = (uint32_t)h << 16, two_w = w + w;
	float normal = f32_from_bits((two_w >> 4) + (0xe0u << 23)) * 0x1p-112f;
	float subnormal = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
	uint32_t is_sub = -(uint32_t)(two_w < (1u << 27));
	uint32_t mag = (f32_bits(subnormal) & is_sub) | (f32_bits(normal) & ~is_sub);
	return f32_from_bits((w & 0x80000000u) | mag);
}

static void
cvt_portable(enum hsa_dtype t, const void *restrict src, float *restrict dst, size_t n)
{
	const uint16_t *h = src;
	size_t i = 0;

	if (t == HSA_F32) {
		memcpy(dst, src, n * 4);
	} else if (t == HSA_F16) {
		for (; i + 8 <= n; i += 8)
			for (int l = 0; l < 8; l++)
				dst[i + l] = f16_to_f32_branchless(h[i + l]);
		for (; i < n; i++)
			dst[i] = f16_to_f32_branchless(h[i]);
	} else {
		for (; i + 8 <= n; i += 8)
			for (int l = 0; l < 8; l++)
				dst[i + l] = f32_from_bits((uint32_t)h[i + l] << 16);
		for (; i < n; i++)
			dst[i] = f32_from_bits((uint32_t)h[i] << 16);
	}
}

/* Eight independent partial sums: a fixed-width inner loop that gcc turns into vector code. */
static inline float
dot_portable(const float *a, const float *b, size_t n)
{
	float acc[8] = {0};
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		for (int l = 0; l < 8; l++)
			acc[l] += a[i + l] * b[i + l];
	float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static void
dots_portable(const float *q, const float *rows, size_t ld, size_t n_rows, size_t d, float *out)
{
	for (size_t r = 0; r < n_rows; r++)
		out[r] = dot_portable(q, rows + r * ld, d);
}

/* Eight outputs at a time, summed in registers over all rows, then added to y once. */
static void
wsum_portable(const float *p, const float *rows, size_t ld, size_t n_rows, size_t d, float a,
              float *y)
{
	size_t e = 0;

	for (; e + 8 <= d; e += 8) {
		float acc[8] = {0};
		for (size_t i = 0; i < n_rows; i++)
			for (int l = 0; l < 8; l++)
				acc[l] += p[i] * rows[i * ld + e + l];
		for (int l = 0; l < 8; l++)
			y[e + l] += a * acc[l];
	}
	for (; e < d; e++) {
		float acc = 0.0f;
		for (size_t i = 0; i < n_rows; i++)
			acc += p[i] * rows[i * ld + e];
		y[e] += a * acc;
	}
}

static const struct kernels kernels_portable = {
        .name = "portable",
        .cvt = cvt_portable,
        .dots = dots_portable,
        .wsum = wsum_portable,
};

#ifdef CPU_HAVE_AVX2_PATH
__attribute__((target("avx2,fma,f16c"))) static void
cvt_avx2(enum hsa_dtype t, const void *src, float *dst, size_t n)
{
	const uint16_t *h = src;
	size_t i = 0;

	if (t == HSA_F32) {
		memcpy(dst, src, n * 4);
	} else if (t == HSA_F16) {
		for (; i + 8 <= n; i += 8)
			_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(
			                                  (const __m128i *)(h + i))));
		for (; i < n; i++)
			dst[i] = half_f16_to_float(h[i]);
	} else {
		for (; i + 8 <= n; i += 8) {
			__m256i w =
			        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i)));
			_mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
		}
		for (; i < n; i++)
			dst[i] = half_bf16_to_float(h[i]);
	}
}

__attribute__((target("avx2,fma"))) static inline float
hsum_avx2(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static void
dots_avx2(const float *q, const float *rows, size_t ld, size_t n_rows, size_t d, float *out)
{
	for (size_t r = 0; r < n_rows; r++) {
		const float *x = rows + r * ld;
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
		size_t i = 0;
		for (; i + 16 <= d; i += 16) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(x + i), a0);
			a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(x + i + 8),
			                     a1);
		}
		if (i + 8 <= d) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(x + i), a0);
			i += 8;
		}
		float s = hsum_avx2(_mm256_add_ps(a0, a1));
		for (; i < d; i++)
			s += q[i] * x[i];
		out[r] = s;
	}
}

/* Eight elements of a 16-bit type as floats; t is a constant where this is inlined. */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256
load8_avx2(enum hsa_dtype t, const uint16_t *p)
{
	__m128i h = _mm_loadu_si128((const __m128i *)p);
	if (t == HSA_F16)
		return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* dots_avx2 on rows of a 16-bit type, converted in registers: the same sums, bit for bit. */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void
dots16_avx2_t(enum hsa_dtype t, const float *q, const uint16_t *rows, size_t ld, size_t n_rows,
              size_t d, float *out)
{
	for (size_t r = 0; r < n_rows; r++) {
		const uint16_t *x = rows + r * ld;
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
		size_t i = 0;
		for (; i + 16 <= d; i += 16) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8_avx2(t, x + i), a0);
			a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load8_avx2(t, x + i + 8),
			                     a1);
		}
		if (i + 8 <= d) {
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8_avx2(t, x + i), a0);
			i += 8;
		}
		float s = hsum_avx2(_mm256_add_ps(a0, a1));
		for (; i < d; i++)
			s += q[i] *
			     (t == HSA_F16 ? half_f16_to_float(x[i]) : half_bf16_to_float(x[i]));
		out[r] = s;
	}
}

__attribute__((target("avx2,fma,f16c"))) static void
dots16_avx2(enum hsa_dtype t, const float *q, const uint16_t *rows, size_t ld, size_t n_rows,
            size_t d, float *out)
{
	if (t == HSA_F16)
		dots16_avx2_t(HSA_F16, q, rows, ld, n_rows, d, out);
	else
		dots16_avx2_t(HSA_BF16, q, rows, ld, n_rows, d, out);
}

__attribute__((target("avx2,fma"))) static void
wsum_avx2(const float *p, const float *rows, size_t ld, size_t n_rows, size_t d, float a, float *y)
{
	__m256 av = _mm256_set1_ps(a);
	size_t e = 0;

	for (; e + 32 <= d; e += 32) {
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		for (size_t i = 0; i < n_rows; i++) {
			const float *x = rows + i * ld + e;
			__m256 pv = _mm256_set1_ps(p[i]);
			a0 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(x), a0);
			a1 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(x + 8), a1);
			a2 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(x + 16), a2);
			a3 = _mm256_fmadd_ps(pv, _mm256_loadu_ps(x + 24), a3);
		}
		_mm256_storeu_ps(y + e, _mm256_fmadd_ps(av, a0, _mm256_loadu_ps(y + e)));
		_mm256_storeu_ps(y + e + 8, _mm256_fmadd_ps(av, a1, _mm256_loadu_ps(y + e + 8)));
		_mm256_storeu_ps(y + e + 16, _mm256_fmadd_ps(av, a2, _mm256_loadu_ps(y + e + 16)));
		_mm256_storeu_ps(y + e + 24, _mm256_fmadd_ps(av, a3, _mm256_loadu_ps(y + e + 24)));
	}
	for (; e + 8 <= d; e += 8) {
		__m256 a0 = _mm256_setzero_ps();
		for (size_t i = 0; i < n_rows; i++)
			a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[i]),
			                     _mm256_loadu_ps(rows + i * ld + e), a0);
		_mm256_storeu_ps(y + e, _mm256_fmadd_ps(av, a0, _mm256_loadu_ps(y + e)));
	}
	for (; e < d; e++) {
		float acc = 0.0f;
		for (size_t i = 0; i < n_rows; i++)
			acc += p[i] * rows[i * ld + e];
		y[e] += a * acc;
	}
}

static const struct kernels kernels_avx2 = {
        .name = "avx2",
        .cvt = cvt_avx2,
        .dots = dots_avx2,
        .dots16 = dots16_avx2,
        .wsum = wsum_avx2,
};
#endif

static const struct kernels *
kernels_pick(void)
{
	const char *force = getenv("HSAMEM_CPU_KERNELS");

	if (force != NULL && strcmp(force, "portable") == 0)
		return &kernels_portable;
#ifdef CPU_HAVE_AVX2_PATH
	/* clang's __builtin_cpu_supports has no "f16c": ask CPUID leaf 1 */
	unsigned a, b, c, d;
	bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c)
		return &kernels_avx2;
#endif
	return &kernels_portable;
}

/* ---- thread pool ---- */

/*
 * A job is one call's list of independent pieces. It lives on its caller's stack; it is linked into
 * the pool's list while it has unclaimed pieces, and the caller returns only when every piece is
 * done, so no pool thread can touch it afterwards. Everything in it is guarded by the pool's mutex.
 */
struct job {
	int (*fn)(void *arg, size_t piece);
	void *arg;
	size_t n_pieces;
	size_t next; /* first unclaimed piece */
	size_t done; /* pieces finished */
	int err;     /* first error; the pieces not yet started are skipped */
	struct job *link;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t work; /* a job was queued, or stop */
	pthread_cond_t done; /* some job's last piece finished */
	struct job *jobs;    /* jobs with unclaimed pieces, oldest first */
	bool stop;
	unsigned n_threads; /* helpers; callers work on their own jobs too */
	pthread_t *threads;
};

static void
job_unlink(struct pool *p, struct job *j)
{
	for (struct job **pp = &p->jobs; *pp != NULL; pp = &(*pp)->link) {
		if (*pp == j) {
			*pp = j->link;
			return;
		}
	}
}

/* Claims the next piece of j and runs it; called and returns with p->mu held. */
static void
job_run_one(struct pool *p, struct job *j)
{
	size_t piece = j->next++;
	if (j->next == j->n_pieces)
		job_unlink(p, j);
	bool skip = j->err != 0;
	pthread_mutex_unlock(&p->mu);
	int err = skip ? 0 : j->fn(j->arg, piece);
	pthread_mutex_lock(&p->mu);
	if (err != 0 && j->err == 0)
		j->err = err;
	if (++j->done == j->n_pieces)
		pthread_cond_broadcast(&p->done);
}

static void *
pool_main(void *arg)
{
	struct pool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->jobs == NULL)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stop)
			break;
		job_run_one(p, p->jobs);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Runs fn(arg, 0 .. n_pieces-1) on the pool and the calling thread; returns the first error. */
static int
pool_run(struct pool *p, int (*fn)(void *, size_t), void *arg, size_t n_pieces)
{
	if (p->n_threads == 0 || n_pieces <= 1) {
		for (size_t i = 0; i < n_pieces; i++) {
			int err = fn(arg, i);
			if (err != 0)
				return err;
		}
		return 0;
	}

	struct job j = {.fn = fn, .arg = arg, .n_pieces = n_pieces};
	struct job **tail;

	pthread_mutex_lock(&p->mu);
	for (tail = &p->jobs; *tail != NULL; tail = &(*tail)->link)
		;
	*tail = &j;
	pthread_cond_broadcast(&p->work);
	while (j.next < j.n_pieces)
		job_run_one(p, &j);
	while (j.done < j.n_pieces)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	return j.err;
}

static void
pool_fini(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	pthread_cond_destroy(&p->done);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->mu);
}

/* Starts n helper threads with every signal blocked: signals are the daemon's main thread's. */
static int
pool_init(struct pool *p, unsigned n)
{
	sigset_t all, old;
	int err = 0;

	memset(p, 0, sizeof(*p));
	if (n > 0 && (p->threads = calloc(n, sizeof(pthread_t))) == NULL)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; p->n_threads < n; p->n_threads++) {
		int rc = pthread_create(&p->threads[p->n_threads], NULL, pool_main, p);
		if (rc != 0) {
			err = -rc;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0)
		pool_fini(p);
	return err;
}

/* ---- top-k ---- */

struct cand {
	float s;
	int64_t j;
};

/* The ranking of HSA.md: higher score first, ties to the lower chunk index. */
static inline bool
ranks_before(float as, int64_t aj, float bs, int64_t bj)
{
	return as > bs || (as == bs && aj < bj);
}

/*
 * Offers a candidate to a bounded heap of the best k: h[0] is the worst of those kept, so a
 * candidate that does not rank before it is turned away with one comparison.
 */
static inline void
heap_offer(struct cand *h, uint32_t *size, uint32_t k, float s, int64_t j)
{
	uint32_t i;

	if (*size < k) {
		for (i = (*size)++; i > 0; i = (i - 1) / 2) {
			struct cand *up = &h[(i - 1) / 2];
			if (!ranks_before(up->s, up->j, s, j))
				break;
			h[i] = *up;
		}
	} else if (ranks_before(s, j, h[0].s, h[0].j)) {
		for (i = 0;;) {
			uint32_t c = 2 * i + 1;
			if (c >= k)
				break;
			if (c + 1 < k && ranks_before(h[c].s, h[c].j, h[c + 1].s, h[c + 1].j))
				c++;
			if (!ranks_before(s, j, h[c].s, h[c].j))
				break;
			h[i] = h[c];
			i = c;
		}
	} else {
		return;
	}
	h[i] = (struct cand){s, j};
}

static int
cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (ranks_before(x->s, x->j, y->s, y->j))
		return -1;
	return ranks_before(y->s, y->j, x->s, x->j) ? 1 : 0;
}

/* ---- the backend ---- */

struct cpu_backend {
	struct gpu_backend base;
	const struct kernels *kern;
	unsigned threads;
	struct pool pool;
	atomic_uint_fast64_t calls;
	atomic_uint_fast64_t errors;
};

/* One attend() call, shared by its pieces. The fields below "group" change per token group. */
struct call {
	const struct kernels *kern;
	const struct hsa_spec *spec;
	const struct hsa_source *src;
	const struct hsa_query *q;
	struct hsa_result *res;
	uint32_t G, d_rh, k;
	size_t esz;
	float r_scale, a_scale; /* 1/sqrt(d_r/h_kv), 1/sqrt(d_h) */
	uint64_t *vis;          /* [n] visible chunks per token */
	uint32_t group;         /* tokens per group */
	struct cand *heaps;     /* [ranges][group][h_kv][k] */
	uint32_t *heap_size;    /* [ranges][group][h_kv] */

	/* group */
	uint32_t t0, nt;    /* tokens t0 .. t0+nt-1 */
	uint64_t max_vis;   /* most chunks any token of the group sees */
	size_t n_ranges;    /* chunk ranges of the scoring phase */
	size_t n_subgroups; /* token subgroups of the scoring phase */
	size_t n_attend;    /* pieces of the attention phase */
};

static inline size_t
heap_slot(const struct call *c, size_t range, uint32_t t, uint32_t r)
{
	return (range * c->group + (t - c->t0)) * c->spec->h_kv + r;
}

/* Scoring piece: the chunks of one range against the tokens of one subgroup. */
static int
score_piece(void *arg, size_t piece)
{
	struct call *c = arg;
	const struct hsa_spec *sp = c->spec;
	const struct hsa_source *src = c->src;
	size_t range = piece % c->n_ranges, sub = piece / c->n_ranges;
	uint64_t lo = c->max_vis * range / c->n_ranges, hi = c->max_vis * (range + 1) / c->n_ranges;
	uint32_t ta = c->t0 + (uint32_t)(c->nt * sub / c->n_subgroups);
	uint32_t tb = c->t0 + (uint32_t)(c->nt * (sub + 1) / c->n_subgroups);
	size_t d_r = sp->d_r, block = BLOCK_FLOATS / d_r > 0 ? BLOCK_FLOATS / d_r : 1;
	float *buf = NULL, *sc;
	uint64_t sub_vis = 0;
	int err = 0;

	for (uint32_t t = ta; t < tb; t++) {
		for (uint32_t r = 0; r < sp->h_kv; r++)
			c->heap_size[heap_slot(c, range, t, r)] = 0;
		if (c->vis[t] > sub_vis)
			sub_vis = c->vis[t];
	}
	if (hi > sub_vis)
		hi = sub_vis;
	if (lo >= hi)
		return 0;
	if ((buf = malloc((block * d_r + block) * sizeof(float))) == NULL)
		return -ENOMEM;
	sc = buf + block * d_r;

	for (uint64_t j = lo; j < hi;) {
		const void *rows = NULL;
		uint64_t count = 0;
		if ((err = src->landmarks(src->ctx, j, &rows, &count)) != 0)
			goto out;
		if (rows == NULL || count == 0) {
			err = HSAMEM_EINTERNAL;
			goto out;
		}
		if (count > hi - j)
			count = hi - j;
		bool direct = sp->dtype == HSA_F32 && ((uintptr_t)rows & 3) == 0;
		bool fused = sp->dtype != HSA_F32 && c->kern->dots16 != NULL &&
		             ((uintptr_t)rows & 1) == 0;
		for (uint64_t off = 0; off < count; off += block) {
			uint64_t jb = j + off;
			size_t nb = count - off < block ? (size_t)(count - off) : block;
			const char *raw = (const char *)rows + off * d_r * c->esz;
			const float *lm = (const float *)raw;
			if (!direct && !fused) {
				c->kern->cvt(sp->dtype, raw, buf, nb * d_r);
				lm = buf;
			}
			for (uint32_t t = ta; t < tb; t++) {
				if (c->vis[t] <= jb)
					continue;
				size_t m = c->vis[t] - jb < nb ? (size_t)(c->vis[t] - jb) : nb;
				const float *qr = c->q->qr + (size_t)t * d_r;
				for (uint32_t r = 0; r < sp->h_kv; r++) {
					size_t slot = heap_slot(c, range, t, r);
					struct cand *h = c->heaps + slot * c->k;
					if (fused)
						c->kern->dots16(sp->dtype, qr + r * c->d_rh,
						                (const uint16_t *)raw + r * c->d_rh,
						                d_r, m, c->d_rh, sc);
					else
						c->kern->dots(qr + r * c->d_rh, lm + r * c->d_rh,
						              d_r, m, c->d_rh, sc);
					for (size_t i = 0; i < m; i++) {
						float s = sc[i] * c->r_scale;
						if (isnan(s))
							s = -INFINITY;
						heap_offer(h, &c->heap_size[slot], c->k, s,
						           (int64_t)(jb + i));
					}
				}
			}
		}
		j += count;
	}
out:
	free(buf);
	return err;
}

/* The fusion weights of the kk selected chunks, listed best first, into w. */
static void
fusion_weights(const struct call *c, const int64_t *sel, const float *s, uint32_t kk, float *w)
{
	if (kk == 0)
		return;
	if (c->spec->weighting == HSA_STICKBREAK) {
		/*
		 * Most recent first: the selection is ranked by score, so walk it by decreasing
		 * chunk index, each step taking the highest index below the previous one.
		 */
		float rest = 1.0f;
		int64_t prev = INT64_MAX;
		for (uint32_t n = 0; n < kk; n++) {
			uint32_t at = 0;
			int64_t best = -1;
			for (uint32_t i = 0; i < kk; i++) {
				if (sel[i] < prev && sel[i] > best) {
					best = sel[i];
					at = i;
				}
			}
			prev = best;
			/* sigmoid(x) and 1 - sigmoid(x) = sigmoid(-x), neither overflowing. */
			float x = s[at], e = expf(-fabsf(x));
			float sig = x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
			float sig_neg = x >= 0 ? e / (1.0f + e) : 1.0f / (1.0f + e);
			w[at] = sig * rest;
			rest *= sig_neg;
		}
		return;
	}

	/* Softmax; s[0] is the largest score. Scores of +-inf take the limit of the softmax. */
	float m = s[0], sum = 0.0f;
	if (m == -INFINITY) {
		for (uint32_t i = 0; i < kk; i++)
			w[i] = 0.0f;
		return;
	}
	for (uint32_t i = 0; i < kk; i++) {
		w[i] = m == INFINITY ? (s[i] == INFINITY ? 1.0f : 0.0f) : expf(s[i] - m);
		sum += w[i];
	}
	for (uint32_t i = 0; i < kk; i++)
		w[i] /= sum;
}

/* Scratch of one attention piece. */
struct attend_scratch {
	struct cand *cand; /* [ranges * k] */
	float *logits;     /* [G][S] */
	float *rows;       /* [key_block][d_h] */
	size_t key_block;
};

/* Softmax of S logits in place, optionally off by one: the denominator gains exp(0). */
static void
chunk_softmax(float *a, uint32_t S, float scale, bool off_by_one)
{
	float m = -INFINITY, sum;

	for (uint32_t s = 0; s < S; s++) {
		a[s] *= scale;
		if (a[s] > m)
			m = a[s];
	}
	if (off_by_one && m < 0.0f)
		m = 0.0f; /* keeps exp(0 - m) <= 1 as well */
	sum = off_by_one ? expf(-m) : 0.0f;
	for (uint32_t s = 0; s < S; s++) {
		a[s] = expf(a[s] - m);
		sum += a[s];
	}
	float inv = 1.0f / sum;
	for (uint32_t s = 0; s < S; s++)
		a[s] *= inv;
}

/*
 * The rows of one chunk's K or V for kv head r, keys s0 .. s0+nb-1, as floats: straight from the
 * source when they are f32 and aligned, else converted into the scratch. Returns the rows; *ld is
 * the distance between them.
 */
static const float *
chunk_rows(const struct call *c, struct attend_scratch *sc, const char *base, uint32_t s0,
           size_t nb, size_t *ld)
{
	const struct hsa_spec *sp = c->spec;
	size_t stride = (size_t)sp->h_kv * sp->d_h;

	if (sp->dtype == HSA_F32 && ((uintptr_t)base & 3) == 0) {
		*ld = stride;
		return (const float *)base + s0 * stride;
	}
	for (size_t i = 0; i < nb; i++)
		c->kern->cvt(sp->dtype, base + (s0 + i) * stride * c->esz, sc->rows + i * sp->d_h,
		             sp->d_h);
	*ld = sp->d_h;
	return sc->rows;
}

/*
 * Asks the memory system for kv head r's K and V rows of a chunk before they are needed: they are
 * short runs far apart (one per key), which the hardware prefetcher does not foresee, so without
 * this every row would cost a full memory latency. Capped so that a large chunk does not flush
 * what it is about to use.
 */
static void
chunk_prefetch(const struct call *c, const void *kv, uint32_t r)
{
	const struct hsa_spec *sp = c->spec;
	size_t row = (size_t)sp->d_h * c->esz, stride = (size_t)sp->h_kv * row;
	const char *K = (const char *)kv + r * row, *V = K + (size_t)sp->S * stride;
	size_t n = PREFETCH_BYTES / row < sp->S ? PREFETCH_BYTES / row : sp->S;

	for (size_t s = 0; s < n; s++) {
		for (size_t off = 0; off < row; off += 64) {
			__builtin_prefetch(K + s * stride + off, 0, 3);
			__builtin_prefetch(V + s * stride + off, 0, 3);
		}
	}
}

/* Attention inside selected chunk kv (rank i, weight w) for the query heads of kv head r. */
static void
attend_chunk(const struct call *c, struct attend_scratch *sc, uint32_t t, uint32_t r, uint32_t i,
             const void *kv, float w)
{
	const struct hsa_spec *sp = c->spec;
	uint32_t S = sp->S, d_h = sp->d_h, G = c->G;
	size_t head0 = (size_t)t * sp->h_q + (size_t)r * G, ld;
	const float *rows;
	const char *K = (const char *)kv + (size_t)r * d_h * c->esz;
	const char *V = K + (size_t)S * sp->h_kv * d_h * c->esz;
	bool fused = sp->dtype != HSA_F32 && c->kern->dots16 != NULL && ((uintptr_t)K & 1) == 0;

	for (uint32_t s0 = 0; s0 < S; s0 += (uint32_t)sc->key_block) {
		size_t nb = S - s0 < sc->key_block ? S - s0 : sc->key_block;
		if (fused) {
			const uint16_t *kh = (const uint16_t *)K + (size_t)s0 * sp->h_kv * d_h;
			for (uint32_t g = 0; g < G; g++)
				c->kern->dots16(sp->dtype, c->q->qa + (head0 + g) * d_h, kh,
				                (size_t)sp->h_kv * d_h, nb, d_h,
				                sc->logits + (size_t)g * S + s0);
			continue;
		}
		rows = chunk_rows(c, sc, K, s0, nb, &ld);
		for (uint32_t g = 0; g < G; g++)
			c->kern->dots(c->q->qa + (head0 + g) * d_h, rows, ld, nb, d_h,
			              sc->logits + (size_t)g * S + s0);
	}
	for (uint32_t g = 0; g < G; g++) {
		float *p = sc->logits + (size_t)g * S;
		chunk_softmax(p, S, c->a_scale, sp->off_by_one);
		if (c->res->attn != NULL)
			memcpy(c->res->attn + ((head0 + g) * c->k + i) * S, p, S * sizeof(float));
	}
	if (w == 0.0f)
		return;
	for (uint32_t s0 = 0; s0 < S; s0 += (uint32_t)sc->key_block) {
		size_t nb = S - s0 < sc->key_block ? S - s0 : sc->key_block;
		rows = chunk_rows(c, sc, V, s0, nb, &ld);
		for (uint32_t g = 0; g < G; g++) {
			c->kern->wsum(sc->logits + (size_t)g * S + s0, rows, ld, nb, d_h, w,
			              c->res->out + (head0 + g) * d_h);
		}
	}
}

/*
 * From rank *i on, the next selected chunk worth attending to: its K/V are fetched and prefetched
 * and *i names it; *i = kk when none is left.
 */
static int
next_chunk(const struct call *c, uint32_t r, size_t at, uint32_t kk, uint32_t *i, const void **kv)
{
	const struct hsa_result *res = c->res;

	for (; *i < kk; (*i)++) {
		if (res->weight[at + *i] == 0.0f && res->attn == NULL)
			continue; /* contributes nothing, and nothing is to be shown */
		int err = c->src->chunk_kv(c->src->ctx, (uint64_t)res->sel[at + *i], kv);
		if (err != 0)
			return err;
		if (*kv == NULL)
			return HSAMEM_EINTERNAL;
		chunk_prefetch(c, *kv, r);
		return 0;
	}
	return 0;
}

/* Everything for one (token, kv head): merge the pieces' heaps, weight, attend, fuse. */
static int
attend_pair(const struct call *c, struct attend_scratch *sc, uint32_t t, uint32_t r)
{
	const struct hsa_spec *sp = c->spec;
	struct hsa_result *res = c->res;
	uint32_t k = c->k, kk = c->vis[t] < k ? (uint32_t)c->vis[t] : k;
	size_t at = ((size_t)t * sp->h_kv + r) * k, head0 = (size_t)t * sp->h_q + (size_t)r * c->G;
	size_t n = 0;

	if (kk > 0) {
		for (size_t p = 0; p < c->n_ranges; p++) {
			size_t slot = heap_slot(c, p, t, r);
			memcpy(sc->cand + n, c->heaps + slot * k,
			       c->heap_size[slot] * sizeof(struct cand));
			n += c->heap_size[slot];
		}
		if (n < kk)
			return HSAMEM_EINTERNAL;
		qsort(sc->cand, n, sizeof(struct cand), cand_cmp);
	}
	for (uint32_t i = 0; i < k; i++) {
		res->sel[at + i] = i < kk ? sc->cand[i].j : -1;
		res->score[at + i] = i < kk ? sc->cand[i].s : -INFINITY;
		res->weight[at + i] = 0.0f;
	}
	fusion_weights(c, res->sel + at, res->score + at, kk, res->weight + at);

	memset(res->out + head0 * sp->d_h, 0, (size_t)c->G * sp->d_h * sizeof(float));
	if (res->attn != NULL)
		memset(res->attn + head0 * k * sp->S, 0, (size_t)c->G * k * sp->S * sizeof(float));
	/* Each chunk's rows are on their way while the one before is worked on. */
	uint32_t i = 0, i_next;
	const void *kv = NULL, *kv_next = NULL;
	int err = next_chunk(c, r, at, kk, &i, &kv);
	while (err == 0 && i < kk) {
		i_next = i + 1;
		if ((err = next_chunk(c, r, at, kk, &i_next, &kv_next)) != 0)
			break;
		attend_chunk(c, sc, t, r, i, kv, res->weight[at + i]);
		i = i_next;
		kv = kv_next;
	}
	return err;
}

/* Attention piece: a run of the group's (token, kv head) pairs. */
static int
attend_piece(void *arg, size_t piece)
{
	struct call *c = arg;
	const struct hsa_spec *sp = c->spec;
	size_t pairs = (size_t)c->nt * sp->h_kv;
	size_t a = pairs * piece / c->n_attend, b = pairs * (piece + 1) / c->n_attend;
	struct attend_scratch sc = {0};
	int err = 0;

	sc.key_block = BLOCK_FLOATS / sp->d_h > 0 ? BLOCK_FLOATS / sp->d_h : 1;
	if (sc.key_block > sp->S)
		sc.key_block = sp->S;
	sc.cand = malloc(c->n_ranges * c->k * sizeof(struct cand));
	sc.logits = malloc((size_t)c->G * sp->S * sizeof(float));
	sc.rows = malloc(sc.key_block * sp->d_h * sizeof(float));
	if (sc.cand == NULL || sc.logits == NULL || sc.rows == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t pr = a; pr < b && err == 0; pr++)
		err = attend_pair(c, &sc, c->t0 + (uint32_t)(pr / sp->h_kv),
		                  (uint32_t)(pr % sp->h_kv));
out:
	free(sc.rows);
	free(sc.logits);
	free(sc.cand);
	return err;
}

/* Cuts the current token group into pieces for both phases. */
static void
call_plan(struct call *c, unsigned threads)
{
	const struct hsa_spec *sp = c->spec;
	uint64_t work = 0, kk_sum = 0;

	c->max_vis = 0;
	for (uint32_t t = c->t0; t < c->t0 + c->nt; t++) {
		uint64_t v = c->vis[t];
		if (v > c->max_vis)
			c->max_vis = v;
		work += v * sp->d_r;
		kk_sum += v < c->k ? v : c->k;
	}

	c->n_ranges = 1;
	c->n_subgroups = 1;
	if (threads > 1 && work >= SCORE_MIN_WORK) {
		uint64_t by_chunks = c->max_vis / SCORE_MIN_CHUNKS;
		c->n_ranges = by_chunks < 1 ? 1 : by_chunks < threads ? by_chunks : threads;
		size_t per = (threads + c->n_ranges - 1) / c->n_ranges;
		c->n_subgroups = per < c->nt ? per : c->nt;
	}

	uint64_t attend_work = kk_sum * sp->h_q * sp->S * sp->d_h * 2;
	size_t pairs = (size_t)c->nt * sp->h_kv;
	c->n_attend = 1;
	if (threads > 1 && attend_work >= ATTEND_MIN_WORK)
		c->n_attend = pairs < 4 * (size_t)threads ? pairs : 4 * (size_t)threads;
}

static bool
cpu_supports(struct gpu_backend *b, const struct hsa_spec *spec)
{
	return spec != NULL && gpu_shape_ok(spec);
}

static int
cpu_attend(struct gpu_backend *b, const struct hsa_spec *spec, const struct hsa_source *src,
           const struct hsa_query *q, struct hsa_result *res)
{
	struct cpu_backend *cb = (struct cpu_backend *)b;
	struct call c = {0};
	int err;

	if ((err = gpu_check_call(spec, src, q, res)) != 0)
		goto out;
	c.kern = cb->kern;
	c.spec = spec;
	c.src = src;
	c.q = q;
	c.res = res;
	c.G = spec->h_q / spec->h_kv;
	c.d_rh = spec->d_r / spec->h_kv;
	c.k = q->k;
	c.esz = spec_elem_size(spec->dtype);
	c.r_scale = 1.0f / sqrtf((float)c.d_rh);
	c.a_scale = 1.0f / sqrtf((float)spec->d_h);

	/* Groups as large as the heaps' budget allows: larger ones read the landmarks
	 * fewer times. */
	size_t per_token = (size_t)cb->threads * spec->h_kv * c.k * sizeof(struct cand);
	size_t group = HEAP_BYTES / per_token;
	group = group < 1 ? 1 : group > TOK_GROUP ? TOK_GROUP : group;
	c.group = group < q->n ? (uint32_t)group : q->n;
	size_t slots = (size_t)cb->threads * c.group * spec->h_kv;
	c.vis = malloc(q->n * sizeof(uint64_t));
	c.heaps = malloc(slots * c.k * sizeof(struct cand));
	c.heap_size = malloc(slots * sizeof(uint32_t));
	if (c.vis == NULL || c.heaps == NULL || c.heap_size == NULL) {
		err = -ENOMEM;
		goto out;
	}
	for (uint32_t t = 0; t < q->n; t++) {
		uint64_t v = q->pos[t] / spec->S;
		c.vis[t] = v < src->n_chunks ? v : src->n_chunks;
	}

	for (c.t0 = 0; c.t0 < q->n; c.t0 += c.nt) {
		c.nt = q->n - c.t0 < c.group ? q->n - c.t0 : c.group;
		call_plan(&c, cb->threads);
		if (c.max_vis > 0) {
			err = pool_run(&cb->pool, score_piece, &c, c.n_ranges * c.n_subgroups);
			if (err != 0)
				goto out;
		}
		if ((err = pool_run(&cb->pool, attend_piece, &c, c.n_attend)) != 0)
			goto out;
	}
out:
	free(c.heap_size);
	free(c.heaps);
	free(c.vis);
	atomic_fetch_add_explicit(&cb->calls, 1, memory_order_relaxed);
	if (err != 0)
		atomic_fetch_add_explicit(&cb->errors, 1, memory_order_relaxed);
	return err;
}

static void
cpu_forget(struct gpu_backend *b, uint64_t uid)
{
	/* Nothing is cached. */
}

static void
cpu_stats(struct gpu_backend *b, struct gpu_stats *out)
{
	struct cpu_backend *cb = (struct cpu_backend *)b;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "cpu");
	snprintf(out->device, sizeof(out->device), "%u threads, %s kernels", cb->threads,
	         cb->kern->name);
	out->calls = atomic_load_explicit(&cb->calls, memory_order_relaxed);
	out->errors = atomic_load_explicit(&cb->errors, memory_order_relaxed);
}

static void
cpu_free(struct gpu_backend *b)
{
	struct cpu_backend *cb = (struct cpu_backend *)b;

	if (cb == NULL)
		return;
	pool_fini(&cb->pool);
	free(cb);
}

static const struct gpu_ops cpu_ops = {
        .name = "cpu",
        .supports = cpu_supports,
        .attend = cpu_attend,
        .forget = cpu_forget,
        .stats = cpu_stats,
        .free = cpu_free,
};

int
gpu_cpu_alloc(unsigned threads, struct gpu_backend **out)
{
	struct cpu_backend *cb;
	int err;

	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n < 1 ? 1 : (unsigned)n;
	}
	if (threads > THREADS_MAX)
		threads = THREADS_MAX;
	if ((cb = calloc(1, sizeof(*cb))) == NULL)
		return -ENOMEM;
	cb->base.ops = &cpu_ops;
	cb->kern = kernels_pick();
	cb->threads = threads;
	atomic_init(&cb->calls, 0);
	atomic_init(&cb->errors, 0);
	if ((err = pool_init(&cb->pool, threads - 1)) != 0)
		goto fail;
	*out = &cb->base;
	return 0;
fail:
	free(cb);
	return err;
}
