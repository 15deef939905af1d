/*
 * cli_attend.c: the hsamem attend command: HSA attention of query vectors, read from files of raw
 * little-endian f32, against a client memory; the fused output can be written to a file of the
 * same form.
 *
 * The number of query tokens n comes from -n, else from --pos, else from the size of the qa file
 * and the memory's spec (one stats request). Files are read whole before the first request, so
 * that a bad file is a local error (exit 4) and nothing is sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_format.h"

enum { O_QR = 256, O_QA, O_POS, O_OUT, O_ATT };

struct attend_state {
	const char *qr_path, *qa_path, *out_path, *pos_arg;
	struct hsamem_attend a;
};

static int
attend_opt(struct ctx *c, void *state, int id, const char *arg)
{
	struct attend_state *st = state;

	switch (id) {
	case O_QR: st->qr_path = arg; break;
	case O_QA: st->qa_path = arg; break;
	case O_POS: st->pos_arg = arg; break;
	case O_OUT: st->out_path = arg; break;
	case O_ATT: st->a.want_attention = true; break;
	case 'n':
		if (!cli_parse_u32(arg, &st->a.n) || st->a.n == 0)
			return cli_usage(c, "-n takes a positive number");
		break;
	case 'k':
		if (!cli_parse_u32(arg, &st->a.top_k) || st->a.top_k == 0)
			return cli_usage(c, "-k takes a positive number");
		break;
	}
	return -1;
}

/* Reads a raw little-endian f32 file. */
static int
read_f32_file(struct ctx *c, const char *path, float **fp, size_t *np)
{
	char *buf;
	size_t len;
	int fd, err;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return cli_io_error(c, path, -errno);
	err = cli_slurp(fd, &buf, &len);
	close(fd);
	if (err != 0)
		return cli_io_error(c, path, err);
	if (len == 0 || len % 4 != 0) {
		free(buf);
		return cli_usage(c, "%s: %zu bytes is not a whole number of f32s", path, len);
	}
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
	for (size_t i = 0; i < len; i += 4) {
		char t = buf[i];
		buf[i] = buf[i + 3];
		buf[i + 3] = t;
		t = buf[i + 1];
		buf[i + 1] = buf[i + 2];
		buf[i + 2] = t;
	}
#endif
	*fp = (float *)(void *)buf; /* malloc'd memory is aligned for float */
	*np = len / 4;
	return EXIT_OK;
}

static int
write_f32_file(struct ctx *c, const char *path, const float *f, size_t n)
{
	FILE *fp = fopen(path, "wb");
	size_t i;

	if (fp == NULL)
		return cli_io_error(c, path, -errno);
	for (i = 0; i < n; i++) {
		uint32_t u;
		unsigned char b[4];
		memcpy(&u, &f[i], 4);
		b[0] = (unsigned char)u;
		b[1] = (unsigned char)(u >> 8);
		b[2] = (unsigned char)(u >> 16);
		b[3] = (unsigned char)(u >> 24);
		if (fwrite(b, 1, 4, fp) != 4)
			break;
	}
	if (i < n || fclose(fp) != 0) {
		int e = -errno;
		if (i < n)
			fclose(fp);
		return cli_io_error(c, path, e != 0 ? e : -EIO);
	}
	return EXIT_OK;
}

/* Parses "N,N,..." into a new array. */
static int
parse_positions(const char *s, uint64_t **pp, size_t *np)
{
	size_t n = 1, i = 0;
	uint64_t *p;
	char *copy, *tok, *save;

	for (const char *q = s; *q != '\0'; q++)
		n += *q == ',';
	if ((p = calloc(n, sizeof(*p))) == NULL || (copy = strdup(s)) == NULL) {
		free(p);
		return -1;
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
		if (i == n || !cli_parse_u64(tok, UINT64_MAX, &p[i++]))
			break;
	free(copy);
	if (i != n || tok != NULL) {
		free(p);
		return -1;
	}
	*pp = p;
	*np = n;
	return 0;
}

/* n of an attend request when the command line does not say it: from the memory's spec. */
static int
attend_n(struct ctx *c, const char *user, size_t qa_len, uint32_t *n)
{
	struct hsamem_stats *st;
	uint64_t per;
	int err;

	if ((err = hsamem_stats(c->h, user, &st)) != 0)
		return cli_fail(c, err);
	per = st->n_memories == 1 ? (uint64_t)st->memories[0].spec.h_q * st->memories[0].spec.d_h
	                          : 0;
	hsamem_result_free(st);
	if (per == 0 || qa_len % per != 0 || qa_len / per > UINT32_MAX)
		return cli_usage(c, "cannot tell n from the qa file and the spec; give -n");
	*n = (uint32_t)(qa_len / per);
	return EXIT_OK;
}

static int
attend_run(struct ctx *c, void *state, char **args, int n_args)
{
	struct attend_state *st = state;
	struct hsamem_attend *a = &st->a;
	struct hsamem_attend_result *res = NULL;
	uint64_t *pos = NULL;
	float *qr = NULL, *qa = NULL;
	size_t n_pos = 0;
	int rv, err;

	if (st->qr_path == NULL || st->qa_path == NULL)
		return cli_usage(c, "--qr FILE and --qa FILE are required");
	if (st->pos_arg != NULL && parse_positions(st->pos_arg, &pos, &n_pos) != 0)
		return cli_usage(c, "--pos takes numbers separated by commas");
	if (n_pos > 0 && a->n != 0 && n_pos != a->n) {
		rv = cli_usage(c, "%zu positions for %u query tokens", n_pos, a->n);
		goto done;
	}
	if (a->n == 0 && n_pos > 0)
		a->n = (uint32_t)n_pos;
	if ((rv = read_f32_file(c, st->qr_path, &qr, &a->qr_len)) != EXIT_OK ||
	    (rv = read_f32_file(c, st->qa_path, &qa, &a->qa_len)) != EXIT_OK ||
	    (rv = cli_connect(c)) != 0)
		goto done;
	if (a->n == 0 && (rv = attend_n(c, args[0], a->qa_len, &a->n)) != EXIT_OK)
		goto done;
	a->qr = qr;
	a->qa = qa;
	a->positions = pos;
	if ((err = hsamem_attend(c->h, args[0], a, &res)) != 0) {
		rv = cli_fail(c, err);
		goto done;
	}
	if (st->out_path != NULL &&
	    (rv = write_f32_file(c, st->out_path, res->output, res->output_len)) != EXIT_OK)
		goto done;
	print_attend(args[0], res, pos, st->out_path);
	rv = EXIT_OK;
done:
	hsamem_result_free(res);
	free(qr);
	free(qa);
	free(pos);
	return rv;
}

static const struct option attend_options[] = {
        {"qr", required_argument, NULL, O_QR},
        {"qa", required_argument, NULL, O_QA},
        {"pos", required_argument, NULL, O_POS},
        {"out", required_argument, NULL, O_OUT},
        {"attention", no_argument, NULL, O_ATT},
        {"top-k", required_argument, NULL, 'k'},
        {0},
};

static const char attend_details[] =
        "Shows the selected chunks and their weights per token and kv head.\n\n"
        "  --qr FILE          retrieval queries, raw little-endian f32 [n][h_kv][d_r/h_kv]\n"
        "  --qa FILE          attention queries, raw little-endian f32 [n][h_q][d_h]\n"
        "  --pos N,...        each token's stream position (default: after the stream)\n"
        "  -n N               query tokens (default: from --pos, or from the spec)\n"
        "  -k, --top-k N      chunks per token (default: the memory's)\n"
        "  --out FILE         write the fused output, raw little-endian f32 [n][h_q][d_h]\n"
        "  --attention        also ask for the in-chunk attention\n";

const struct cmd cmd_attend = {
        .name = "attend",
        .args = "USER --qr FILE --qa FILE [--pos N,...] [-n N] [-k N] [--out FILE] [--attention]",
        .summary = "Runs HSA attention for query vectors against a client memory.",
        .details = attend_details,
        .opts = attend_options,
        .shortopts = "n:k:",
        .min_args = 1,
        .max_args = 1,
        .missing = "no USER given",
        .state_size = sizeof(struct attend_state),
        .opt = attend_opt,
        .run = attend_run,
};
