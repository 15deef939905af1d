/*
 * cli.c: hsamem, the command-line client of hsamemd: parses `hsamem [-s URL] [--json]
 * [-t SECONDS] COMMAND [ARGS]`, makes the requests through libhsamem and maps outcomes to the
 * documented exit codes. Output goes through cli_format.c; errors go to stderr as
 * `hsamem: COMMAND: MESSAGE`.
 *
 * Exit codes are decided in one place (exit_for()) from the library's error, except for local I/O
 * (files, stdin, stdout), which this file detects itself: the library cannot tell a failed write
 * of ours from an errno sent by the daemon.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define APPEND_BATCH_ENTRIES 256
#define APPEND_BATCH_BYTES   (1u << 20)
#define MAX_TAGS             64

struct ctx {
	const char *url; /* -s, $HSAMEM_SOCKET, or NULL for the library's default */
	int timeout_ms;  /* -t; 0: the library's default */
	const struct cmd *cmd;
	struct hsamem *h; /* opened on first use */
	int io_err;       /* a local read or write failed: -errno */
};

struct cmd {
	const char *name;
	int (*run)(struct ctx *c, int argc, char **argv);
	const char *args;
	const char *summary;
	const char *details;
};

static const struct cmd *find_cmd(const char *name);

static int
exit_for(int err)
{
	switch (err) {
	case HSAMEM_ECONNECT:
	case -ETIMEDOUT:
	case -ECONNRESET:
	case -ECONNREFUSED: return EXIT_CONNECT;
	}
	return EXIT_SERVER;
}

/* Reports a failed request: the daemon's (or library's) sentence when there is one. */
static int
fail(struct ctx *c, int err)
{
	const char *m = c->h != NULL ? hsamem_last_message(c->h) : "";

	fprintf(stderr, "hsamem: %s: %s\n", c->cmd->name, m[0] != '\0' ? m : hsamem_strerror(err));
	return exit_for(err);
}

static int usage_error(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
usage_error(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "hsamem: %s: ", c->cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: hsamem %s %s\n", c->cmd->name, c->cmd->args);
	return EXIT_USAGE;
}

static int
io_error(struct ctx *c, const char *what, int err)
{
	fprintf(stderr, "hsamem: %s: %s: %s\n", c->cmd->name, what, strerror(-err));
	return EXIT_IO;
}

static int
open_handle(struct ctx *c)
{
	int err;

	if (c->h != NULL)
		return 0;
	if ((err = hsamem_open(c->url, &c->h)) != 0) {
		fprintf(stderr, "hsamem: %s: %s: %s\n", c->cmd->name,
		        c->url != NULL ? c->url : "default address", hsamem_strerror(err));
		return err == HSAMEM_EINVAL ? EXIT_USAGE : EXIT_SERVER;
	}
	if (c->timeout_ms != 0)
		hsamem_set_timeout(c->h, c->timeout_ms);
	return 0;
}

static bool
parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	unsigned long long n;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || n > max)
		return false;
	*v = n;
	return true;
}

static bool
parse_u32(const char *s, uint32_t *v)
{
	uint64_t n;

	if (!parse_u64(s, UINT32_MAX, &n))
		return false;
	*v = (uint32_t)n;
	return true;
}

/* The options every command takes, appended to its own. */
#define COMMON_LONG                                                                                \
	{"json", no_argument, NULL, 'j'},                                                          \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

static void
cmd_help(const struct cmd *cmd)
{
	printf("usage: hsamem [-s URL] [--json] [-t SECONDS] %s %s\n\n%s\n", cmd->name, cmd->args,
	       cmd->summary);
	if (cmd->details != NULL && cmd->details[0] != '\0')
		printf("\n%s", cmd->details);
}

/*
 * Handles what getopt returned for the common options. Returns -1 when the option was handled
 * and parsing goes on, else the exit status to return now.
 */
static int
common_opt(struct ctx *c, int opt)
{
	switch (opt) {
	case 'j': out.json = true; return -1;
	case 'h': cmd_help(c->cmd); return EXIT_OK;
	}
	/* getopt has already said what was wrong. */
	fprintf(stderr, "usage: hsamem %s %s\n", c->cmd->name, c->cmd->args);
	return EXIT_USAGE;
}

/* Checks the number of positional arguments left after the options. */
static int
want_args(struct ctx *c, int argc, char **argv, int min, int max, const char *missing)
{
	if (argc - optind < min)
		return usage_error(c, "%s", missing);
	if (argc - optind > max)
		return usage_error(c, "unexpected argument '%s'", argv[optind + max]);
	return -1;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- commands ---- */

static int
run_ping(struct ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {COMMON_LONG, {0}};
	struct hsamem_server *s;
	double t0;
	int opt, rv, err;

	while ((opt = getopt_long(argc, argv, "jh", lo, NULL)) != -1)
		if ((rv = common_opt(c, opt)) >= 0)
			return rv;
	if ((rv = want_args(c, argc, argv, 0, 0, "")) >= 0 || (rv = open_handle(c)) != 0)
		return rv;
	t0 = now_ms();
	if ((err = hsamem_ping(c->h, &s)) != 0)
		return fail(c, err);
	print_ping(hsamem_url(c->h), s, now_ms() - t0);
	hsamem_result_free(s);
	return EXIT_OK;
}

static int
run_create(struct ctx *c, int argc, char **argv)
{
	enum { O_ENC = 256, O_TOK, O_REV, O_S, O_HKV, O_DH, O_HQ, O_DR, O_DT, O_W, O_OB1, O_K };
	static const struct option lo[] = {
	        {"encoder", required_argument, NULL, O_ENC},
	        {"tokenizer", required_argument, NULL, O_TOK},
	        {"revision", required_argument, NULL, O_REV},
	        {"chunk-size", required_argument, NULL, O_S},
	        {"h-kv", required_argument, NULL, O_HKV},
	        {"d-h", required_argument, NULL, O_DH},
	        {"h-q", required_argument, NULL, O_HQ},
	        {"d-r", required_argument, NULL, O_DR},
	        {"dtype", required_argument, NULL, O_DT},
	        {"weighting", required_argument, NULL, O_W},
	        {"off-by-one", no_argument, NULL, O_OB1},
	        {"top-k", required_argument, NULL, O_K},
	        COMMON_LONG,
	        {0},
	};
	struct hsamem_spec spec = {0};
	struct hsamem_memory *m;
	uint32_t *num;
	int opt, rv, err, t;

	while ((opt = getopt_long(argc, argv, "jh", lo, NULL)) != -1) {
		num = NULL;
		switch (opt) {
		case O_ENC: spec.encoder = optarg; break;
		case O_TOK: spec.tokenizer = optarg; break;
		case O_REV: num = &spec.revision; break;
		case O_S: num = &spec.chunk_size; break;
		case O_HKV: num = &spec.h_kv; break;
		case O_DH: num = &spec.d_h; break;
		case O_HQ: num = &spec.h_q; break;
		case O_DR: num = &spec.d_r; break;
		case O_K: num = &spec.top_k; break;
		case O_OB1: spec.off_by_one = true; break;
		case O_DT:
			for (t = HSAMEM_F16; t <= HSAMEM_F32; t++)
				if (strcmp(optarg, hsamem_dtype_name(t)) == 0)
					spec.dtype = t;
			if (spec.dtype == HSAMEM_DTYPE_DEFAULT)
				return usage_error(c, "--dtype is f16, bf16 or f32");
			break;
		case O_W:
			for (t = HSAMEM_SOFTMAX; t <= HSAMEM_STICKBREAK; t++)
				if (strcmp(optarg, hsamem_weighting_name(t)) == 0)
					spec.weighting = t;
			if (spec.weighting == HSAMEM_WEIGHTING_DEFAULT)
				return usage_error(c, "--weighting is softmax or stickbreak");
			break;
		default:
			if ((rv = common_opt(c, opt)) >= 0)
				return rv;
		}
		if (num != NULL && !parse_u32(optarg, num))
			return usage_error(c, "'%s' is not a number", optarg);
	}
	if ((rv = want_args(c, argc, argv, 1, 1, "no USER given")) >= 0 ||
	    (rv = open_handle(c)) != 0)
		return rv;
	if ((err = hsamem_create(c->h, argv[optind], &spec, &m)) != 0)
		return fail(c, err);
	print_memory(m);
	hsamem_result_free(m);
	return EXIT_OK;
}

/* Reads all of a file descriptor into a NUL-terminated buffer. */
static int
slurp(int fd, char **bufp, size_t *lenp)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *p;
	ssize_t n;

	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? 2 * cap : 65536;
			if ((p = realloc(buf, cap + 1)) == NULL) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;
			free(buf);
			return e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (buf == NULL && (buf = malloc(1)) == NULL)
		return -ENOMEM;
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	return 0;
}

struct append_opts {
	enum hsamem_role role;
	const char *tags[MAX_TAGS];
	size_t n_tags;
	unsigned flags;
};

/* Accumulates the outcome of several append requests as one. */
static void
merge_append(struct hsamem_append_info *sum, const struct hsamem_append_info *a, bool first)
{
	if (first) {
		*sum = *a;
		return;
	}
	sum->count += a->count;
	sum->tokens = a->tokens;
	sum->chunks = a->chunks;
	sum->sealed += a->sealed;
	sum->created = sum->created || a->created;
}

static int
append_lines(struct ctx *c, const char *user, const struct append_opts *o,
             struct hsamem_append_info *sum)
{
	struct hsamem_entry_in e[APPEND_BATCH_ENTRIES];
	struct hsamem_append_info info;
	bool progress = isatty(STDERR_FILENO), shown = false;
	size_t n = 0, bytes = 0, cap = 0, i;
	uint64_t total = 0;
	char *line = NULL;
	ssize_t len;
	int err = 0, rv = EXIT_OK;

	memset(e, 0, sizeof(e));
	for (;;) {
		errno = 0;
		len = getline(&line, &cap, stdin);
		if (len >= 0) {
			while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			if (line[strspn(line, " \t\v\f")] == '\0')
				continue;
			e[n].role = o->role;
			e[n].tags = o->tags;
			e[n].n_tags = o->n_tags;
			if ((e[n].text = strdup(line)) == NULL) {
				rv = io_error(c, "reading stdin", -ENOMEM);
				goto done;
			}
			n++;
			bytes += (size_t)len;
		} else if (errno != 0) {
			rv = io_error(c, "reading stdin", -errno);
			goto done;
		}
		if (n > 0 &&
		    (len < 0 || n == APPEND_BATCH_ENTRIES || bytes >= APPEND_BATCH_BYTES)) {
			err = hsamem_append(c->h, user, e, n, NULL, 0, o->flags, &info);
			if (err != 0) {
				if (shown)
					fputc('\n', stderr);
				shown = false;
				rv = fail(c, err);
				goto done;
			}
			merge_append(sum, &info, total == 0);
			total += n;
			for (i = 0; i < n; i++)
				free((char *)e[i].text);
			n = bytes = 0;
			if (progress && (len >= 0 || shown)) {
				fprintf(stderr, "\rhsamem: append: %llu entries",
				        (unsigned long long)total);
				shown = true;
			}
		}
		if (len < 0)
			break;
	}
	if (total == 0)
		rv = usage_error(c, "no non-empty line on stdin");
done:
	if (shown)
		fputc('\n', stderr);
	for (i = 0; i < n; i++)
		free((char *)e[i].text);
	free(line);
	return rv;
}

static int
run_append(struct ctx *c, int argc, char **argv)
{
	enum { O_ROLE = 256, O_TAG, O_LINES, O_NOCREATE };
	static const struct option lo[] = {
	        {"role", required_argument, NULL, O_ROLE},
	        {"tag", required_argument, NULL, O_TAG},
	        {"lines", no_argument, NULL, O_LINES},
	        {"no-create", no_argument, NULL, O_NOCREATE},
	        COMMON_LONG,
	        {0},
	};
	struct append_opts o = {.role = HSAMEM_ROLE_USER};
	struct hsamem_append_info info;
	struct hsamem_entry_in e = {0};
	bool lines = false, role_ok;
	char *buf = NULL;
	size_t len;
	int opt, rv, err, r;

	while ((opt = getopt_long(argc, argv, "jh", lo, NULL)) != -1) {
		switch (opt) {
		case O_ROLE:
			role_ok = false;
			for (r = HSAMEM_ROLE_OTHER; r <= HSAMEM_ROLE_TOOL; r++)
				if (strcmp(optarg, hsamem_role_name(r)) == 0) {
					o.role = r;
					role_ok = true;
				}
			if (!role_ok)
				return usage_error(c, "--role is user, assistant, system, tool "
				                      "or other");
			break;
		case O_TAG:
			if (o.n_tags == MAX_TAGS)
				return usage_error(c, "at most %d tags", MAX_TAGS);
			o.tags[o.n_tags++] = optarg;
			break;
		case O_LINES: lines = true; break;
		case O_NOCREATE: o.flags |= HSAMEM_APPEND_NO_CREATE; break;
		default:
			if ((rv = common_opt(c, opt)) >= 0)
				return rv;
		}
	}
	if ((rv = want_args(c, argc, argv, 1, 2, "no USER given")) >= 0)
		return rv;
	if (lines && argc - optind == 2)
		return usage_error(c, "--lines reads stdin; give no TEXT");
	if ((rv = open_handle(c)) != 0)
		return rv;
	if (lines) {
		if ((rv = append_lines(c, argv[optind], &o, &info)) != EXIT_OK)
			return rv;
		print_append(argv[optind], &info);
		return EXIT_OK;
	}
	if (argc - optind == 2) {
		e.text = argv[optind + 1];
	} else {
		if ((err = slurp(STDIN_FILENO, &buf, &len)) != 0)
			return io_error(c, "reading stdin", err);
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			buf[--len] = '\0';
		e.text = buf;
	}
	if (e.text[0] == '\0') {
		free(buf);
		return usage_error(c, "nothing to append");
	}
	e.role = o.role;
	e.tags = o.tags;
	e.n_tags = o.n_tags;
	err = hsamem_append(c->h, argv[optind], &e, 1, NULL, 0, o.flags, &info);
	free(buf);
	if (err != 0)
		return fail(c, err);
	print_append(argv[optind], &info);
	return EXIT_OK;
}

static int
run_query(struct ctx *c, int argc, char **argv)
{
	enum { O_ENTRIES = 256, O_NOTAIL };
	static const struct option lo[] = {
	        {"top-k", required_argument, NULL, 'k'},
	        {"entries", required_argument, NULL, O_ENTRIES},
	        {"no-tail", no_argument, NULL, O_NOTAIL},
	        COMMON_LONG,
	        {0},
	};
	struct hsamem_query q = {0};
	struct hsamem_query_result *res;
	int opt, rv, err;

	while ((opt = getopt_long(argc, argv, "k:jh", lo, NULL)) != -1) {
		switch (opt) {
		case 'k':
			if (!parse_u32(optarg, &q.top_k) || q.top_k == 0)
				return usage_error(c, "-k takes a positive number");
			break;
		case O_ENTRIES:
			if (!parse_u32(optarg, &q.max_entries))
				return usage_error(c, "--entries takes a number");
			break;
		case O_NOTAIL: q.no_tail = true; break;
		default:
			if ((rv = common_opt(c, opt)) >= 0)
				return rv;
		}
	}
	if ((rv = want_args(c, argc, argv, 2, 2, "give USER and TEXT")) >= 0 ||
	    (rv = open_handle(c)) != 0)
		return rv;
	q.text = argv[optind + 1];
	if ((err = hsamem_query(c->h, argv[optind], &q, &res)) != 0)
		return fail(c, err);
	print_query(argv[optind], res);
	hsamem_result_free(res);
	return EXIT_OK;
}

/* Reads a raw little-endian f32 file. */
static int
read_f32_file(struct ctx *c, const char *path, float **fp, size_t *np)
{
	char *buf;
	size_t len;
	int fd, err;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return io_error(c, path, -errno);
	err = slurp(fd, &buf, &len);
	close(fd);
	if (err != 0)
		return io_error(c, path, err);
	if (len == 0 || len % 4 != 0) {
		free(buf);
		return usage_error(c, "%s: %zu bytes is not a whole number of f32s", path, len);
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
		return io_error(c, path, -errno);
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
		return io_error(c, path, e != 0 ? e : -EIO);
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
		if (i == n || !parse_u64(tok, UINT64_MAX, &p[i++]))
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
		return fail(c, err);
	per = st->n_memories == 1 ? (uint64_t)st->memories[0].spec.h_q * st->memories[0].spec.d_h
	                          : 0;
	hsamem_result_free(st);
	if (per == 0 || qa_len % per != 0 || qa_len / per > UINT32_MAX)
		return usage_error(c, "cannot tell n from the qa file and the spec; give -n");
	*n = (uint32_t)(qa_len / per);
	return EXIT_OK;
}

static int
run_attend(struct ctx *c, int argc, char **argv)
{
	enum { O_QR = 256, O_QA, O_POS, O_OUT, O_ATT };
	static const struct option lo[] = {
	        {"qr", required_argument, NULL, O_QR},
	        {"qa", required_argument, NULL, O_QA},
	        {"pos", required_argument, NULL, O_POS},
	        {"out", required_argument, NULL, O_OUT},
	        {"attention", no_argument, NULL, O_ATT},
	        {"top-k", required_argument, NULL, 'k'},
	        COMMON_LONG,
	        {0},
	};
	const char *qr_path = NULL, *qa_path = NULL, *out_path = NULL, *pos_arg = NULL;
	struct hsamem_attend a = {0};
	struct hsamem_attend_result *res = NULL;
	uint64_t *pos = NULL;
	float *qr = NULL, *qa = NULL;
	size_t n_pos = 0;
	int opt, rv, err;

	while ((opt = getopt_long(argc, argv, "n:k:jh", lo, NULL)) != -1) {
		switch (opt) {
		case O_QR: qr_path = optarg; break;
		case O_QA: qa_path = optarg; break;
		case O_POS: pos_arg = optarg; break;
		case O_OUT: out_path = optarg; break;
		case O_ATT: a.want_attention = true; break;
		case 'n':
			if (!parse_u32(optarg, &a.n) || a.n == 0)
				return usage_error(c, "-n takes a positive number");
			break;
		case 'k':
			if (!parse_u32(optarg, &a.top_k) || a.top_k == 0)
				return usage_error(c, "-k takes a positive number");
			break;
		default:
			if ((rv = common_opt(c, opt)) >= 0)
				return rv;
		}
	}
	if ((rv = want_args(c, argc, argv, 1, 1, "no USER given")) >= 0)
		return rv;
	if (qr_path == NULL || qa_path == NULL)
		return usage_error(c, "--qr FILE and --qa FILE are required");
	if (pos_arg != NULL && parse_positions(pos_arg, &pos, &n_pos) != 0)
		return usage_error(c, "--pos takes numbers separated by commas");
	if (n_pos > 0 && a.n != 0 && n_pos != a.n) {
		rv = usage_error(c, "%zu positions for %u query tokens", n_pos, a.n);
		goto done;
	}
	if (a.n == 0 && n_pos > 0)
		a.n = (uint32_t)n_pos;
	if ((rv = read_f32_file(c, qr_path, &qr, &a.qr_len)) != EXIT_OK ||
	    (rv = read_f32_file(c, qa_path, &qa, &a.qa_len)) != EXIT_OK ||
	    (rv = open_handle(c)) != 0)
		goto done;
	if (a.n == 0 && (rv = attend_n(c, argv[optind], a.qa_len, &a.n)) != EXIT_OK)
		goto done;
	a.qr = qr;
	a.qa = qa;
	a.positions = pos;
	if ((err = hsamem_attend(c->h, argv[optind], &a, &res)) != 0) {
		rv = fail(c, err);
		goto done;
	}
	if (out_path != NULL &&
	    (rv = write_f32_file(c, out_path, res->output, res->output_len)) != EXIT_OK)
		goto done;
	print_attend(argv[optind], res, pos, out_path);
	rv = EXIT_OK;
done:
	hsamem_result_free(res);
	free(qr);
	free(qa);
	free(pos);
	return rv;
}

static int
run_flush(struct ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {COMMON_LONG, {0}};
	struct hsamem_flush_info f;
	int opt, rv, err;

	while ((opt = getopt_long(argc, argv, "jh", lo, NULL)) != -1)
		if ((rv = common_opt(c, opt)) >= 0)
			return rv;
	if ((rv = want_args(c, argc, argv, 1, 1, "no USER given")) >= 0 ||
	    (rv = open_handle(c)) != 0)
		return rv;
	if ((err = hsamem_flush(c->h, argv[optind], NULL, &f)) != 0)
		return fail(c, err);
	print_flush(argv[optind], &f);
	return EXIT_OK;
}

static int
run_users(struct ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {COMMON_LONG, {0}};
	struct hsamem_user_list *l;
	int opt, rv, err;

	while ((opt = getopt_long(argc, argv, "jh", lo, NULL)) != -1)
		if ((rv = common_opt(c, opt)) >= 0)
			return rv;
	if ((rv = want_args(c, argc, argv, 0, 0, "")) >= 0 || (rv = open_handle(c)) != 0)
		return rv;
	if ((err = hsamem_users(c->h, &l)) != 0)
		return fail(c, err);
	print_users(l);
	hsamem_result_free(l);
	return EXIT_OK;
}

static int
run_stats(struct ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {COMMON_LONG, {0}};
	struct hsamem_stats *s;
	int opt, rv, err;

	while ((opt = getopt_long(argc, argv, "jh", lo, NULL)) != -1)
		if ((rv = common_opt(c, opt)) >= 0)
			return rv;
	if ((rv = want_args(c, argc, argv, 0, 1, "")) >= 0 || (rv = open_handle(c)) != 0)
		return rv;
	if ((err = hsamem_stats(c->h, optind < argc ? argv[optind] : NULL, &s)) != 0)
		return fail(c, err);
	print_stats(s);
	hsamem_result_free(s);
	return EXIT_OK;
}

/* Parses --first N --count N [--tensors] for entries and chunks. */
static int
range_opts(struct ctx *c, int argc, char **argv, uint64_t *first, uint32_t *count, bool *tensors)
{
	enum { O_FIRST = 256, O_COUNT, O_TENSORS };
#define RANGE_LONG                                                                                 \
	{"first", required_argument, NULL, O_FIRST},                                               \
	{                                                                                          \
		"count", required_argument, NULL, O_COUNT                                          \
	}
	static const struct option lo_entries[] = {RANGE_LONG, COMMON_LONG, {0}};
	static const struct option lo_chunks[] = {
	        RANGE_LONG, {"tensors", no_argument, NULL, O_TENSORS}, COMMON_LONG, {0}};
#undef RANGE_LONG
	const struct option *use = tensors != NULL ? lo_chunks : lo_entries;
	int opt, rv;

	while ((opt = getopt_long(argc, argv, "jh", use, NULL)) != -1) {
		switch (opt) {
		case O_FIRST:
			if (!parse_u64(optarg, UINT64_MAX, first))
				return usage_error(c, "--first takes a number");
			break;
		case O_COUNT:
			if (!parse_u32(optarg, count) || *count == 0)
				return usage_error(c, "--count takes a positive number");
			break;
		case O_TENSORS: *tensors = true; break;
		default:
			if ((rv = common_opt(c, opt)) >= 0)
				return rv;
		}
	}
	if ((rv = want_args(c, argc, argv, 1, 1, "no USER given")) >= 0)
		return rv;
	return open_handle(c);
}

static int
run_entries(struct ctx *c, int argc, char **argv)
{
	struct hsamem_entry_list *l;
	uint64_t first = 0;
	uint32_t count = 0;
	int rv, err;

	if ((rv = range_opts(c, argc, argv, &first, &count, NULL)) != 0)
		return rv;
	if ((err = hsamem_entries(c->h, argv[optind], first, count, &l)) != 0)
		return fail(c, err);
	print_entries(argv[optind], l);
	hsamem_result_free(l);
	return EXIT_OK;
}

static int
run_chunks(struct ctx *c, int argc, char **argv)
{
	struct hsamem_chunk_list *l;
	uint64_t first = 0;
	uint32_t count = 0;
	bool tensors = false;
	int rv, err;

	if ((rv = range_opts(c, argc, argv, &first, &count, &tensors)) != 0)
		return rv;
	err = hsamem_chunks(c->h, argv[optind], first, count, tensors ? HSAMEM_CHUNKS_TENSORS : 0,
	                    &l);
	if (err != 0)
		return fail(c, err);
	print_chunks(argv[optind], l, tensors);
	hsamem_result_free(l);
	return EXIT_OK;
}

static int
run_delete(struct ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {COMMON_LONG, {0}};
	struct hsamem_delete_info d;
	int opt, rv, err;

	while ((opt = getopt_long(argc, argv, "jh", lo, NULL)) != -1)
		if ((rv = common_opt(c, opt)) >= 0)
			return rv;
	if ((rv = want_args(c, argc, argv, 1, 1, "no USER given")) >= 0 ||
	    (rv = open_handle(c)) != 0)
		return rv;
	if ((err = hsamem_delete(c->h, argv[optind], &d)) != 0)
		return fail(c, err);
	print_delete(argv[optind], &d);
	return EXIT_OK;
}

/* The stream callbacks remember a local failure, so that it exits 4 and not 1. */
static int
export_write(void *arg, const void *buf, size_t len)
{
	struct ctx *c = arg;
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(STDOUT_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return c->io_err = -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static long
import_read(void *arg, void *buf, size_t len)
{
	struct ctx *c = arg;
	ssize_t n;

	do
		n = read(STDIN_FILENO, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return c->io_err = -errno;
	return (long)n;
}

static int
run_transfer(struct ctx *c, int argc, char **argv, bool export)
{
	static const struct option lo[] = {COMMON_LONG, {0}};
	struct hsamem_transfer t;
	int opt, rv, err;

	while ((opt = getopt_long(argc, argv, "jh", lo, NULL)) != -1)
		if ((rv = common_opt(c, opt)) >= 0)
			return rv;
	if ((rv = want_args(c, argc, argv, 1, 1, "no USER given")) >= 0)
		return rv;
	if (export && isatty(STDOUT_FILENO))
		return usage_error(c, "refusing to write an export stream to a terminal; "
		                      "redirect stdout to a file");
	if (!export && isatty(STDIN_FILENO))
		return usage_error(c, "reads an export stream from stdin; redirect it from a file");
	if ((rv = open_handle(c)) != 0)
		return rv;
	/* A large memory takes a while; the per-request timeout still bounds each page. */
	if (export)
		err = hsamem_export_cb(c->h, argv[optind], export_write, c, &t);
	else
		err = hsamem_import_cb(c->h, argv[optind], import_read, c, &t);
	if (err != 0 && c->io_err != 0 && err == c->io_err)
		return io_error(c, export ? "writing stdout" : "reading stdin", err);
	if (err != 0)
		return fail(c, err);
	if (export) {
		/* stdout holds the stream: the summary goes to a terminal on stderr only. */
		if (isatty(STDERR_FILENO)) {
			char b[16];
			fprintf(stderr, "hsamem: export: %s: %llu entries, %llu chunks, %s\n",
			        argv[optind], (unsigned long long)t.entries,
			        (unsigned long long)t.chunks, fmt_bytes(t.bytes, b, sizeof(b)));
		}
		return EXIT_OK;
	}
	print_transfer("imported", argv[optind], &t);
	return EXIT_OK;
}

static int
run_export(struct ctx *c, int argc, char **argv)
{
	return run_transfer(c, argc, argv, true);
}

static int
run_import(struct ctx *c, int argc, char **argv)
{
	return run_transfer(c, argc, argv, false);
}

static void main_help(FILE *f);

static int
run_help(struct ctx *c, int argc, char **argv)
{
	const struct cmd *cmd;

	if (argc > 1) {
		if ((cmd = find_cmd(argv[1])) == NULL)
			return usage_error(c, "unknown command '%s'", argv[1]);
		cmd_help(cmd);
		return EXIT_OK;
	}
	main_help(stdout);
	return EXIT_OK;
}

static void
print_version(void)
{
	if (out.json) {
		j_obj(NULL);
		j_str("version", PACKAGE_VERSION);
		j_str("library", hsamem_version());
		j_u64("protocol", HSAMEM_PROTOCOL_VERSION);
		j_end();
	} else {
		printf("hsamem %s (libhsamem %s, protocol %d)\n", PACKAGE_VERSION, hsamem_version(),
		       HSAMEM_PROTOCOL_VERSION);
	}
}

static int
run_version(struct ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {COMMON_LONG, {0}};
	int opt, rv;

	while ((opt = getopt_long(argc, argv, "jh", lo, NULL)) != -1)
		if ((rv = common_opt(c, opt)) >= 0)
			return rv;
	if ((rv = want_args(c, argc, argv, 0, 0, "")) >= 0)
		return rv;
	print_version();
	return EXIT_OK;
}

static const struct cmd cmds[] = {
        {"ping", run_ping, "", "Checks that the daemon answers; shows its version and backend.",
         NULL},
        {"create", run_create,
         "USER [--encoder NAME] [--chunk-size N] [--h-kv N] [--d-h N] [--h-q N]\n"
         "       [--d-r N] [--dtype f16|bf16|f32] [--weighting softmax|stickbreak]\n"
         "       [--off-by-one] [--top-k N]",
         "Creates the memory of USER with an explicit spec.",
         "Options left out take the encoder's defaults. Creating is optional for built-in\n"
         "encoders: the first append creates the memory with the defaults.\n\n"
         "  --encoder NAME     lexical (built in, the default) or client (K/V/L from the caller)\n"
         "  --tokenizer NAME   --revision N: the encoder's tokenizer and revision\n"
         "  --chunk-size N     S, tokens per chunk\n"
         "  --h-kv N --d-h N   key/value heads and head dimension\n"
         "  --h-q N --d-r N    query heads (a multiple of h-kv), landmark dimension\n"
         "  --dtype T          element type of stored tensors\n"
         "  --weighting W      fusion of the selected chunks\n"
         "  --off-by-one       softmax-off-by-one inside chunks\n"
         "  --top-k N          default k of queries\n"},
        {"append", run_append, "USER [TEXT] [--role ROLE] [--tag TAG]... [--lines] [--no-create]",
         "Appends entries to USER's memory.",
         "TEXT is one entry; without TEXT, all of stdin is one entry, or each non-empty\n"
         "line one entry with --lines.\n\n"
         "  --role ROLE        user (default), assistant, system, tool or other\n"
         "  --tag TAG          a tag for the entries (repeatable)\n"
         "  --lines            one entry per non-empty line of stdin, sent in batches\n"
         "  --no-create        fail if USER has no memory instead of creating one\n"},
        {"query", run_query, "USER TEXT [-k N] [--entries N] [--no-tail]",
         "Shows the chunks of USER's memory that matter most for TEXT.",
         "Each hit shows its score, weight, chunk text and the entries it covers, with the\n"
         "tokens that weigh most highlighted.\n\n"
         "  -k, --top-k N      chunks to return (default: the memory's)\n"
         "  --entries N        covered entries shown per chunk (default 8)\n"
         "  --no-tail          do not consider the unsealed tail\n"},
        {"attend", run_attend,
         "USER --qr FILE --qa FILE [--pos N,...] [-n N] [-k N] [--out FILE] [--attention]",
         "Runs HSA attention for query vectors against a client memory.",
         "Shows the selected chunks and their weights per token and kv head.\n\n"
         "  --qr FILE          retrieval queries, raw little-endian f32 [n][h_kv][d_r/h_kv]\n"
         "  --qa FILE          attention queries, raw little-endian f32 [n][h_q][d_h]\n"
         "  --pos N,...        each token's stream position (default: after the stream)\n"
         "  -n N               query tokens (default: from --pos, or from the spec)\n"
         "  -k, --top-k N      chunks per token (default: the memory's)\n"
         "  --out FILE         write the fused output, raw little-endian f32 [n][h_q][d_h]\n"
         "  --attention        also ask for the in-chunk attention\n"},
        {"flush", run_flush, "USER", "Seals USER's unsealed tail as a padded chunk.", NULL},
        {"users", run_users, "", "Lists the memories.", NULL},
        {"stats", run_stats, "[USER]", "Shows the daemon's counters, latencies and memories.",
         NULL},
        {"entries", run_entries, "USER [--first N] [--count N]",
         "Lists entries of USER's memory (default: the first 100).", NULL},
        {"chunks", run_chunks, "USER [--first N] [--count N] [--tensors]",
         "Lists sealed chunks of USER's memory (default: the first 16).",
         "  --tensors          also fetch K, V and landmark (sizes; base64 with --json)\n"},
        {"delete", run_delete, "USER", "Deletes USER's memory, everything of it. There is no undo.",
         NULL},
        {"export", run_export, "USER > FILE",
         "Writes USER's memory to stdout as an export stream (not to a terminal).", NULL},
        {"import", run_import, "USER < FILE",
         "Creates USER's memory from an export stream on stdin; USER must not exist.", NULL},
        {"help", run_help, "[COMMAND]", "Shows this help, or a command's.", NULL},
        {"version", run_version, "", "Shows the versions of hsamem and its protocol.", NULL},
};

static const struct cmd *
find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static void
main_help(FILE *f)
{
	fprintf(f, "usage: hsamem [-s URL] [--json] [-t SECONDS] COMMAND [ARGS]\n\n"
	           "The command-line client of hsamemd, the persistent memory daemon for\n"
	           "Hierarchical Sparse Attention.\n\n"
	           "Commands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-9s %.*s\n", cmds[i].name, (int)strcspn(cmds[i].summary, "\n"),
		        cmds[i].summary);
	fprintf(f, "\nOptions:\n"
	           "  -s, --socket URL   the daemon's address (default: $HSAMEM_SOCKET, else\n"
	           "                     ipc://DIR/hsamemd.sock with DIR $RUNTIME_DIRECTORY,\n"
	           "                     else $XDG_RUNTIME_DIR, else /tmp)\n"
	           "  -j, --json         print results as JSON\n"
	           "  -t, --timeout S    seconds to wait for each reply (default 30; 0: forever)\n"
	           "  -h, --help         this help; `hsamem help COMMAND` for a command's\n"
	           "  -V, --version      the version\n"
	           "\nExit status:\n"
	           "  0  success\n"
	           "  1  the daemon answered with an error (e.g. no such user)\n"
	           "  2  usage error\n"
	           "  3  cannot connect to the daemon, or no reply in time\n"
	           "  4  local I/O error (a file, stdin or stdout)\n");
}

/* Terminal width for trimmed text: the terminal's, else $COLUMNS, else 100. */
static int
term_width(void)
{
	struct winsize ws;
	const char *env = getenv("COLUMNS");
	uint64_t n;

	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col;
	if (env != NULL && parse_u64(env, 1000, &n) && n >= 40)
		return (int)n;
	return 100;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"socket", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
	        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},       {0},
	};
	static const struct cmd global = {"hsamem", NULL, "[-s URL] [--json] [-t SECONDS] COMMAND",
	                                  "", NULL};
	struct ctx c = {.cmd = &global};
	const char *env;
	double secs;
	char *end;
	int opt, rv;

	env = getenv("HSAMEM_SOCKET");
	if (env != NULL && env[0] != '\0')
		c.url = env;
	/* '+': stop at the command, whose options are its own. */
	while ((opt = getopt_long(argc, argv, "+s:jt:hV", lo, NULL)) != -1) {
		switch (opt) {
		case 's': c.url = optarg; break;
		case 'j': out.json = true; break;
		case 't':
			errno = 0;
			secs = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' || !(secs >= 0) ||
			    secs > 2e6)
				return usage_error(&c, "-t takes seconds, 0 to wait forever");
			c.timeout_ms = secs == 0 ? -1 : (secs * 1000 < 1 ? 1 : (int)(secs * 1000));
			break;
		case 'h': main_help(stdout); return EXIT_OK;
		case 'V': print_version(); return EXIT_OK;
		default: main_help(stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "hsamem: no command given\n");
		main_help(stderr);
		return EXIT_USAGE;
	}
	if ((c.cmd = find_cmd(argv[optind])) == NULL) {
		fprintf(stderr, "hsamem: unknown command '%s'; see hsamem --help\n", argv[optind]);
		return EXIT_USAGE;
	}
	out.width = term_width();
	out.highlight_bold = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
	argc -= optind;
	argv += optind;
	optind = 0; /* GNU getopt: start afresh for the command's options */
	rv = c.cmd->run(&c, argc, argv);
	hsamem_close(c.h);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "hsamem: %s: writing stdout: %s\n", c.cmd->name, strerror(errno));
		return EXIT_IO;
	}
	return rv;
}
