/*
 * lexical.c: the lexical encoder's vectors (LEXICAL.md "Features"). It owns the feature hashing,
 * the rarity prior and the scales; token ids come from tokenizer.c, and it must not depend on
 * anything but a token's id, since stored chunks keep only ids.
 *
 * The encode paths allocate nothing (a query of more than IDS_MAX tokens excepted) and share no
 * state, so any number of threads may call them at once.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsamem_defs.h"
#include "lexical.h"
#include "tokenizer.h"

/* A token adds to this many signed landmark buckets: more buckets make the collision noise of a
 * chunk's score closer to Gaussian, whose tail over 262,144 chunks is far shorter than that of a
 * few large collisions. */
#define BUCKETS 8

/* A landmark is its bag of words divided by max(length, L_FLOOR): a chunk with one or two content
 * words (a flushed tail, a chunk of punctuation) does not score like a perfect match. */
#define L_FLOOR 2.0f

/* Revision 2's BM25: saturation k1, length normalisation b against a fixed reference length of
 * BM25_AVGDL words (a 64-token chunk of prose holds about that many), buckets per term, and which
 * tokens are terms. */
#define BM25_K1      1.2f
#define BM25_B       0.75f
#define BM25_AVGDL   48.0f
#define BM25_BUCKETS 8
#define BM25_TERMS   T_CONTENT

/* In-chunk attention: a key that matches a query word gets logit BETA over one that does not; any
 * content word gets GAMMA, any stopword or punctuation mark -GAMMA. */
#define BETA  6.0f
#define GAMMA 1.0f

/* The largest S (spec_check's bound), and the query length served without allocating. */
#define IDS_MAX 1024

#define GOLDEN 0x9e3779b97f4a7c15ull

enum purpose { P_LANDMARK = 1, P_KEY = 2, P_VALUE = 3 };

/*
 * Rarity prior by token class (index 0: ids lex1 never makes). Longer words are rarer in English
 * (Zipf's law of abbreviation) and numbers and codes are the specifics a question asks about, so
 * they weigh more; without corpus statistics this is the only notion of rarity available.
 */
/* clang-format off */
static const float class_weight[16] = {
	[0] = 1.0f,
	[1] = 0.3f, [2] = 0.5f, [3] = 0.8f, [4] = 1.0f, [5] = 1.15f,
	[6] = 1.3f, [7] = 1.4f, [8] = 1.5f, [9] = 1.6f, [10] = 1.7f,
	[LEX1_NUM_SHORT] = 1.0f,
	[LEX1_NUM] = 1.6f,
	[LEX1_ALNUM] = 1.7f,
	[LEX1_CJK] = 0.8f,
	[LEX1_PIECE] = 1.2f,
};
/* clang-format on */

/*
 * Frequent English content words (stopwords aside) weigh COMMON_WEIGHT times their class weight: a
 * static stand-in for inverse document frequency, so that "name", "number" or "room" in a question
 * count for less than "Alice" or "Denver". Part of the encoder's revision, not of lex1's ids.
 */
#define COMMON_WEIGHT 0.4f
/* clang-format off */
static const char *const common_words[] = {
	"able", "actually", "add", "added", "air", "allow", "allowed", "appear", "appeared",
	"area", "art", "ask", "asked", "asks", "available", "away", "back", "bad", "became",
	"become", "becomes", "began", "begin", "begun", "believe", "believed", "best", "better",
	"big", "black", "blue", "body", "book", "bought", "bring", "broke", "brought", "build",
	"built", "business", "buy", "call", "called", "calls", "came", "car", "case", "central",
	"certain", "change", "changed", "child", "children", "choose", "chose", "city", "clear",
	"cold", "come", "comes", "coming", "common", "community", "company", "consider",
	"considered", "continue", "continued", "country", "create", "created", "current", "cut",
	"day", "days", "dead", "decide", "decided", "die", "died", "different", "difficult",
	"door", "draw", "drive", "drove", "early", "easy", "economic", "education", "eight", "end",
	"enough", "environmental", "example", "expect", "expected", "eye", "eyes", "face", "fact",
	"fall", "family", "far", "father", "federal", "feel", "feeling", "feels", "fell", "felt",
	"finally", "financial", "find", "finds", "fine", "first", "five", "follow", "followed",
	"force", "foreign", "found", "four", "free", "friend", "friends", "full", "game", "gave",
	"general", "gets", "getting", "girl", "give", "given", "gives", "giving", "go", "goes",
	"going", "gone", "good", "got", "government", "great", "green", "grew", "group", "grow",
	"guy", "hand", "hands", "happen", "happened", "happy", "hard", "head", "health", "hear",
	"heard", "held", "help", "helped", "high", "history", "hold", "home", "hot", "hour",
	"hours", "house", "human", "hundred", "idea", "important", "include", "included",
	"information", "instead", "international", "issue", "job", "keep", "keeps", "kept", "kid",
	"kill", "killed", "kind", "knew", "know", "knowing", "known", "knows", "large", "last",
	"late", "later", "law", "lay", "lead", "learn", "learned", "least", "leave", "leaves",
	"leaving", "led", "left", "less", "let", "level", "lie", "life", "like", "liked", "likely",
	"line", "little", "live", "lived", "local", "long", "look", "looked", "looking", "looks",
	"lose", "lost", "lot", "lots", "love", "loved", "made", "major", "make", "makes", "making",
	"man", "mean", "meant", "medical", "meet", "member", "men", "met", "military", "million",
	"minute", "minutes", "moment", "money", "month", "months", "morning", "mother", "move",
	"moved", "name", "national", "natural", "need", "needed", "needs", "new", "next", "nice",
	"night", "nine", "number", "offer", "offered", "office", "old", "one", "open", "opened",
	"others", "paid", "parent", "part", "party", "pass", "passed", "past", "pay", "people",
	"person", "personal", "physical", "place", "play", "played", "point", "political", "poor",
	"possible", "power", "president", "private", "probably", "problem", "program", "public",
	"pull", "pulled", "put", "puts", "question", "raise", "raised", "ran", "reach", "reached",
	"read", "ready", "real", "reason", "recent", "red", "remain", "remained", "remember",
	"remembered", "report", "reported", "research", "result", "right", "rise", "room", "run",
	"running", "runs", "said", "sat", "saw", "say", "saying", "says", "school", "second",
	"see", "seeing", "seem", "seemed", "seems", "seen", "sees", "send", "sent", "serious",
	"serve", "served", "service", "set", "seven", "short", "show", "showed", "shown", "side",
	"significant", "similar", "simple", "single", "sit", "six", "small", "social", "soon",
	"speak", "special", "spend", "spent", "spoke", "stand", "start", "started", "state",
	"stay", "stayed", "stood", "stop", "stopped", "story", "strong", "student", "students",
	"study", "suggest", "suggested", "sure", "system", "take", "taken", "takes", "taking",
	"talk", "talked", "talking", "teacher", "team", "tell", "telling", "tells", "ten", "thing",
	"things", "think", "thinking", "thinks", "third", "thought", "thousand", "three", "time",
	"times", "today", "together", "told", "tomorrow", "took", "tried", "tries", "true", "try",
	"trying", "turn", "turned", "two", "understand", "understood", "use", "used", "uses",
	"using", "usually", "wait", "waited", "walk", "walked", "want", "wanted", "wants", "war",
	"warm", "watch", "watched", "water", "way", "wear", "week", "weeks", "well", "went",
	"white", "whole", "woman", "women", "word", "words", "work", "worked", "working", "works",
	"world", "write", "written", "wrong", "wrote", "year", "years", "yesterday", "young",
};
/* clang-format on */

#define COMMON_SLOTS 2048 /* a power of two, over twice the list */
static uint32_t common_ids[COMMON_SLOTS];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static float sign_byte[256][8]; /* [x][j]: -1 when bit j of x is set, else +1 */

/* Fills the tables that are cheaper to compute once than to write out. */
static void
lex_init(void)
{
	for (int x = 0; x < 256; x++)
		for (int j = 0; j < 8; j++)
			sign_byte[x][j] = (x >> j) & 1 ? -1.0f : 1.0f;
	for (size_t i = 0; i < sizeof(common_words) / sizeof(common_words[0]); i++) {
		uint32_t id = lex1_word_id(common_words[i], strlen(common_words[i]));
		uint32_t s = id & (COMMON_SLOTS - 1);
		while (common_ids[s] != 0 && common_ids[s] != id)
			s = (s + 1) & (COMMON_SLOTS - 1);
		common_ids[s] = id;
	}
}

static bool
is_common(uint32_t id)
{
	for (uint32_t s = id & (COMMON_SLOTS - 1); common_ids[s] != 0;
	     s = (s + 1) & (COMMON_SLOTS - 1))
		if (common_ids[s] == id)
			return true;
	return false;
}

/* The retrieval weight of a token; 0 for stopwords, punctuation and padding. */
static float
weight(uint32_t id)
{
	switch (lex1_kind(id)) {
	case LEX1_K_WORD:
		return class_weight[id >> LEX1_CLASS_SHIFT] *
		       (is_common(id) ? COMMON_WEIGHT : 1.0f);
	case LEX1_K_OTHER: return class_weight[0];
	default: return 0.0f;
	}
}

/* splitmix64's finaliser: every output bit depends on every input bit. */
static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline uint64_t
feature_key(enum purpose p, uint32_t head, uint32_t id)
{
	return mix64(((uint64_t)p << 56) ^ ((uint64_t)head << 32) ^ id);
}

/* Adds w times the landmark feature of id (nb signed buckets) to v, d components. */
static void
add_landmark(float *v, uint32_t d, uint32_t head, uint32_t id, float w, uint32_t nb)
{
	uint64_t key = feature_key(P_LANDMARK, head, id);
	float a = w * (float)(1.0 / sqrt(nb));
	for (uint64_t b = 1; b <= nb; b++) {
		uint64_t x = mix64(key + b * GOLDEN);
		uint32_t idx = (uint32_t)(((x & 0xffffffffu) * d) >> 32);
		v[idx] += (x >> 63) ? -a : a;
	}
}

/* Writes c times the sign pattern (+-c per component) of id to v[0 .. d). */
static void
set_signs(float *v, uint32_t d, enum purpose p, uint32_t head, uint32_t id, float c)
{
	uint64_t key = feature_key(p, head, id), bits = 0;
	uint32_t i = 0;
	for (; i + 8 <= d; i += 8) {
		if (i % 64 == 0)
			bits = mix64(key + (i / 64 + 1) * GOLDEN);
		const float *sb = sign_byte[(bits >> (i % 64)) & 0xff];
		if (c == 1.0f) { /* keys and values: a plain copy, which compiles to wide stores */
			memcpy(v + i, sb, 8 * sizeof(float));
			continue;
		}
		for (uint32_t j = 0; j < 8; j++)
			v[i + j] = c * sb[j];
	}
	for (; i < d; i++) {
		if (i % 64 == 0)
			bits = mix64(key + (i / 64 + 1) * GOLDEN);
		v[i] = (bits >> (i % 64)) & 1 ? -c : c;
	}
}

/* Scales v (d components) to length `to`, or by 1 / max(length, floor) when to is 0. */
static void
scale_to(float *v, uint32_t d, float to, float floor)
{
	float part[8] = {0}, ss = 0; /* eight sums in a fixed order: fast, and reproducible */
	uint32_t i = 0;
	for (; i + 8 <= d; i += 8)
		for (uint32_t j = 0; j < 8; j++)
			part[j] += v[i + j] * v[i + j];
	for (; i < d; i++)
		ss += v[i] * v[i];
	for (uint32_t j = 0; j < 8; j++)
		ss += part[j];
	double len = sqrt(ss);
	if (len == 0)
		return;
	float f = to > 0 ? (float)(to / len) : (float)(1.0 / (len > floor ? len : floor));
	for (i = 0; i < d; i++)
		v[i] *= f;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Which tokens count: content words, stopwords, or both (the words of a text). */
enum terms { T_CONTENT, T_STOP, T_WORDS };

static bool
is_term(uint32_t id, enum terms which)
{
	switch (which) {
	case T_CONTENT: return weight(id) > 0;
	case T_STOP: return lex1_kind(id) == LEX1_K_STOP;
	default: return weight(id) > 0 || lex1_kind(id) == LEX1_K_STOP;
	}
}

/*
 * Copies the ids of tok[0..n) that are terms of kind which into ids, sorted and
 * distinct, with their counts in cnt. Returns how many distinct ids there are. Sorting makes the
 * sums below independent of token order, and so bit-for-bit reproducible.
 */
static size_t
distinct(const uint32_t *tok, size_t n, enum terms which, uint32_t *ids, uint32_t *cnt)
{
	size_t m = 0, k = 0;
	for (size_t i = 0; i < n; i++)
		if (is_term(tok[i], which))
			ids[m++] = tok[i];
	qsort(ids, m, sizeof(*ids), cmp_u32);
	for (size_t i = 0; i < m; i++) {
		if (k > 0 && ids[k - 1] == ids[i]) {
			cnt[k - 1]++;
		} else {
			ids[k] = ids[i];
			cnt[k++] = 1;
		}
	}
	return k;
}

/*
 * The bag of words of one head: the rarity prior times a damped term frequency, 1 + ln(tf) / 2. In
 * a 64-token chunk a word said twice is a topic, but it must not outweigh a second distinct word of
 * the question: presence is what a question matches.
 */
static void
bag(float *v, uint32_t d, uint32_t head, const uint32_t *ids, const uint32_t *cnt, size_t m)
{
	memset(v, 0, d * sizeof(*v));
	for (size_t i = 0; i < m; i++)
		add_landmark(v, d, head, ids[i],
		             weight(ids[i]) * (1.0f + 0.5f * logf((float)cnt[i])), BUCKETS);
}

/*
 * Revision 2: BM25 (LEXICAL.md, "revision 2"). The landmark holds each term's document-side
 * weight, tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)), in BM25_BUCKETS signed buckets; the
 * query holds each term's idf from the memory's statistics, so that <qr, L> is the chunk's BM25
 * score (plus the hash noise of colliding buckets).
 */
static void
bag_bm25(float *v, uint32_t d, uint32_t head, const uint32_t *ids, const uint32_t *cnt, size_t m,
         size_t dl)
{
	float norm = BM25_K1 * (1.0f - BM25_B + BM25_B * (float)dl / BM25_AVGDL);
	memset(v, 0, d * sizeof(*v));
	for (size_t i = 0; i < m; i++) {
		float tf = (float)cnt[i];
		add_landmark(v, d, head, ids[i], tf * (BM25_K1 + 1.0f) / (tf + norm), BM25_BUCKETS);
	}
}

/* The document frequency of id in st (0 when it was never counted). */
static uint32_t
stats_df(const struct enc_stats *st, uint32_t id)
{
	size_t lo = 0, hi = st->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (st->ids[mid] == id)
			return st->df[mid];
		if (st->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* BM25's idf, ln(1 + (N - df + 0.5) / (df + 0.5)): positive, however common the word. */
static float
idf(uint64_t chunks, uint32_t df)
{
	double N = (double)chunks, f = df > chunks ? N : (double)df;
	return (float)log(1.0 + (N - f + 0.5) / (f + 0.5));
}

/* The retrieval query of one head: each term's idf, scaled so that a chunk holding every term
 * once at the reference length scores LEX_BM25_SCALE (score = <qr, L> / sqrt(d)). */
static void
query_bm25(float *v, uint32_t d, uint32_t head, const uint32_t *ids, size_t m,
           const struct enc_stats *st)
{
	double sum = 0;
	memset(v, 0, d * sizeof(*v));
	for (size_t i = 0; i < m; i++)
		sum += idf(st->chunks, stats_df(st, ids[i]));
	if (sum <= 0)
		return;
	float c = (float)(LEX_BM25_SCALE * sqrt((double)d) / sum);
	for (size_t i = 0; i < m; i++)
		add_landmark(v, d, head, ids[i], c * idf(st->chunks, stats_df(st, ids[i])),
		             BM25_BUCKETS);
}

static int
lex_fail(int code, char *why, size_t why_len, const char *msg)
{
	if (why != NULL && why_len > 0)
		snprintf(why, why_len, "%s", msg);
	return code;
}

static int
lex_check_spec(const struct hsa_spec *s, char *why, size_t why_len)
{
	int err = spec_check(s, why, why_len);
	if (err != 0)
		return err;
	if (strcmp(s->encoder, LEX_NAME) != 0)
		return lex_fail(HSAMEM_ESPEC, why, why_len,
		                "lexical: the spec names another encoder");
	if (s->revision < 1 || s->revision > LEX_REVISION)
		return lex_fail(
		        HSAMEM_ESPEC, why, why_len,
		        "lexical: the memory was encoded by another revision of the encoder");
	if (strcmp(s->tokenizer, LEX1_NAME) != 0)
		return lex_fail(HSAMEM_ESPEC, why, why_len, "lexical: tokenizer must be lex1");
	if (s->S > IDS_MAX)
		return lex_fail(HSAMEM_ESPEC, why, why_len,
		                "lexical: chunk_size must be at most 1024");
	if (s->d_h < 8)
		return lex_fail(HSAMEM_ESPEC, why, why_len, "lexical: d_h must be at least 8");
	if (s->d_r / s->h_kv < 16)
		return lex_fail(HSAMEM_ESPEC, why, why_len,
		                "lexical: d_r / h_kv must be at least 16");
	return 0;
}

static void
lex_default_spec(struct hsa_spec *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->encoder, sizeof(s->encoder), "%s", LEX_NAME);
	s->revision = LEX_REVISION;
	snprintf(s->tokenizer, sizeof(s->tokenizer), "%s", LEX1_NAME);
	s->S = 64;
	s->h_kv = 1;
	s->d_h = 64;
	s->h_q = 1;
	s->d_r = 1024;
	s->dtype = HSA_F16;
	s->weighting = HSA_SOFTMAX;
	s->off_by_one = false;
	s->top_k = 8;
}

/* The K and V rows of a key holding token id, every head. */
static void
kv_rows(const struct hsa_spec *s, uint32_t id, float *k, float *v)
{
	for (uint32_t r = 0; r < s->h_kv; r++, k += s->d_h, v += s->d_h) {
		set_signs(k, s->d_h, P_KEY, r, id, 1.0f);
		k[0] = weight(id) > 0 ? 1.0f : -1.0f;
		set_signs(v, s->d_h, P_VALUE, r, id, 1.0f);
	}
}

/* K and V: each row a function of its slot's token alone (encoder.h, encode_kv). */
static int
lex_encode_kv(const struct hsa_spec *s, const uint32_t *tok, size_t n, float *K, float *V)
{
	int err = lex_check_spec(s, NULL, 0);
	if (err != 0)
		return err;
	pthread_once(&init_once, lex_init);
	if (n > s->S)
		return HSAMEM_EINVAL;
	size_t row = (size_t)s->h_kv * s->d_h;
	for (size_t i = 0; i < s->S; i++) {
		if (i < n && tok[i] != 0) {
			kv_rows(s, tok[i], K + i * row, V + i * row);
		} else {
			memset(K + i * row, 0, row * sizeof(*K));
			memset(V + i * row, 0, row * sizeof(*V));
		}
	}
	return 0;
}

static int
lex_encode_chunk(const struct hsa_spec *s, const uint32_t *ctx, size_t n_ctx, const uint32_t *tok,
                 size_t n, float *K, float *V, float *L)
{
	int err = lex_check_spec(s, NULL, 0);
	if (err != 0)
		return err;
	pthread_once(&init_once, lex_init);
	if (n > s->S || n_ctx > 0)
		return HSAMEM_EINVAL;

	size_t row = (size_t)s->h_kv * s->d_h;
	/* Rows before n are written whole below; only padding rows need clearing. */
	memset(K + n * row, 0, (s->S - n) * row * sizeof(*K));
	memset(V + n * row, 0, (s->S - n) * row * sizeof(*V));
	for (size_t i = 0; i < n; i++)
		kv_rows(s, tok[i], K + i * row, V + i * row);

	uint32_t ids[IDS_MAX], cnt[IDS_MAX];
	uint32_t d = s->d_r / s->h_kv;
	if (s->revision == 1) {
		size_t m = distinct(tok, n, T_CONTENT, ids, cnt);
		for (uint32_t r = 0; r < s->h_kv; r++) {
			bag(L + (size_t)r * d, d, r, ids, cnt, m);
			scale_to(L + (size_t)r * d, d, 0, L_FLOOR);
		}
		return 0;
	}
	size_t m = distinct(tok, n, BM25_TERMS, ids, cnt), dl = 0;
	for (size_t i = 0; i < n; i++)
		dl += is_term(tok[i], T_WORDS);
	for (uint32_t r = 0; r < s->h_kv; r++)
		bag_bm25(L + (size_t)r * d, d, r, ids, cnt, m, dl);
	return 0;
}

static int
lex_encode_query_stats(const struct hsa_spec *s, const struct enc_stats *st, const uint32_t *tok,
                       size_t n, float *qr, float *qa)
{
	int err = lex_check_spec(s, NULL, 0);
	if (err != 0)
		return err;
	pthread_once(&init_once, lex_init);

	uint32_t ids_buf[IDS_MAX], cnt_buf[IDS_MAX], *ids = ids_buf, *cnt = cnt_buf;
	if (n > IDS_MAX) {
		ids = malloc(2 * n * sizeof(*ids));
		if (ids == NULL)
			return -ENOMEM;
		cnt = ids + n;
	}

	uint32_t d = s->d_r / s->h_kv;
	size_t m;
	if (s->revision == 1) {
		m = distinct(tok, n, T_CONTENT, ids, cnt);
		for (uint32_t r = 0; r < s->h_kv; r++) {
			bag(qr + (size_t)r * d, d, r, ids, cnt, m);
			scale_to(qr + (size_t)r * d, d, LEX_TEMPERATURE * sqrtf((float)d), 0);
		}
	} else {
		m = distinct(tok, n, BM25_TERMS, ids, cnt);
		for (uint32_t r = 0; r < s->h_kv; r++)
			query_bm25(qr + (size_t)r * d, d, r, ids, m, st);
	}

	/* The attention query: the content words; a question of stopwords alone still points
	 * the attention at those words. */
	if ((m = distinct(tok, n, T_CONTENT, ids, cnt)) == 0)
		m = distinct(tok, n, T_STOP, ids, cnt);
	uint32_t group = s->h_q / s->h_kv;
	float c = BETA * sqrtf((float)s->d_h) / (float)(s->d_h - 1), row[1024]; /* d_h <= 1024 */
	for (uint32_t h = 0; h < s->h_q; h++) {
		float *q = qa + (size_t)h * s->d_h;
		memset(q, 0, s->d_h * sizeof(*q));
		for (size_t i = 0; i < m; i++) {
			set_signs(row, s->d_h, P_KEY, h / group, ids[i], c);
			for (uint32_t j = 1; j < s->d_h; j++)
				q[j] += row[j];
		}
		q[0] = GAMMA * sqrtf((float)s->d_h);
	}

	if (ids != ids_buf)
		free(ids);
	return 0;
}

static int
lex_encode_query(const struct hsa_spec *s, const uint32_t *tok, size_t n, float *qr, float *qa)
{
	struct enc_stats none = {0};
	return lex_encode_query_stats(s, &none, tok, n, qr, qa);
}

const struct enc_ops enc_lexical = {
        .name = LEX_NAME,
        .revision = LEX_REVISION,
        .min_revision = 1,
        .tokenizer = LEX1_NAME,
        .context = 0,
        .sparse_landmarks = true,
        .default_spec = lex_default_spec,
        .tokenize = lex1_tokenize,
        .encode_chunk = lex_encode_chunk,
        .encode_query = lex_encode_query,
        .encode_query_stats = lex_encode_query_stats,
        .encode_kv = lex_encode_kv,
        .check_spec = lex_check_spec,
};
