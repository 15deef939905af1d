/*
 * bench_encoder.c: the built-in lexical encoder on real text: tokenizer throughput, the cost of
 * encoding one sealed chunk (K, V, landmark) and one query. These figures decide where the encoder
 * runs: its per-chunk work is compared with the daemon's whole append path.
 *
 * Usage: bench_encoder --corpus FILE [--seconds S]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "encoder.h"

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n > 0 && (buf = malloc((size_t)n)) != NULL &&
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n > 0 ? (size_t)n : 0;
	return buf;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"corpus", required_argument, NULL, 'c'},
	                                     {"seconds", required_argument, NULL, 's'},
	                                     {NULL, 0, NULL, 0}};
	const char *corpus = NULL;
	double seconds = 3;
	int opt;
	while ((opt = getopt_long(argc, argv, "c:s:", opts, NULL)) != -1) {
		if (opt == 'c') {
			corpus = optarg;
		} else if (opt == 's') {
			seconds = atof(optarg);
		} else {
			fprintf(stderr, "usage: bench_encoder --corpus FILE [--seconds S]\n");
			return 2;
		}
	}
	size_t len = 0;
	char *text = corpus != NULL ? read_file(corpus, &len) : NULL;
	if (text == NULL || len == 0) {
		fprintf(stderr,
		        "bench_encoder: --corpus FILE is needed (bench/corpus.sh makes one)\n");
		return 2;
	}
	const struct enc_ops *enc = enc_default();
	struct hsa_spec spec;
	enc->default_spec(&spec);

	/* tokenizer */
	struct enc_token *toks = NULL;
	size_t n_tok = 0, rounds = 0;
	double t0 = now_s(), t;
	do {
		free(toks);
		toks = NULL;
		if (enc->tokenize(text, len, &toks, &n_tok) != 0)
			return 1;
		rounds++;
	} while ((t = now_s() - t0) < seconds);
	double mb_s = (double)len * (double)rounds / t / 1e6, tok_s = (double)n_tok * rounds / t;

	/* chunks */
	uint32_t *ids = malloc(n_tok * sizeof(uint32_t));
	for (size_t i = 0; i < n_tok; i++)
		ids[i] = toks[i].id;
	size_t per = (size_t)spec.S * spec.h_kv * spec.d_h, chunks = 0, n_chunks = n_tok / spec.S;
	float *K = malloc(per * 4), *V = malloc(per * 4), *L = malloc(spec.d_r * 4);
	float *qr = malloc(spec.d_r * 4), *qa = malloc((size_t)spec.h_q * spec.d_h * 4);
	t0 = now_s();
	do {
		size_t j = chunks % n_chunks;
		enc->encode_chunk(&spec, NULL, 0, ids + j * spec.S, spec.S, K, V, L);
		chunks++;
	} while ((t = now_s() - t0) < seconds);
	double us_chunk = t / (double)chunks * 1e6;

	/* queries of 12 tokens */
	size_t queries = 0;
	t0 = now_s();
	do {
		enc->encode_query(&spec, ids + (queries * 977) % (n_tok - 12), 12, qr, qa);
		queries++;
	} while ((t = now_s() - t0) < seconds);
	double us_query = t / (double)queries * 1e6;

	printf("| measure | value |\n|---|---|\n");
	printf("| corpus | %zu bytes, %zu tokens |\n", len, n_tok);
	printf("| tokenize | %.0f MB/s, %.2f M tokens/s |\n", mb_s, tok_s / 1e6);
	printf("| encode one sealed chunk (S=%u) | %.2f us (%.2f M tokens/s) |\n", spec.S, us_chunk,
	       spec.S / us_chunk);
	printf("| encode one query of 12 tokens | %.2f us |\n", us_query);
	free(toks);
	free(ids);
	free(K);
	free(V);
	free(L);
	free(qr);
	free(qa);
	free(text);
	return 0;
}
