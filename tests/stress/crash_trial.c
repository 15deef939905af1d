/*
 * crash_trial.c: kills the real hsamemd at random moments while clients append, import and delete
 * at once, restarts it, and holds it to its promises (hsamem(7)): no acknowledged append lost, an
 * import complete or absent, a delete complete or not started, every restart a success. In SIGTERM
 * mode the daemon is stopped instead, under the same load, and must exit cleanly within 5 s.
 *
 *   crash_trial [--mode kill|term|both] [--trials N] [--seconds S] [--seed X] [--writers N]
 *               [--max-delay-ms MS] [--import-kib KIB] [--rotate-entries N] [--no-imports]
 *               [--hang-ms MS] [--verbose]
 *
 * One daemon state directory serves every trial. A trial: the daemon runs; writer threads append
 * (one to three entries a request) to memories of their own, an importer imports the source
 * memory's export stream under fresh names, a deleter deletes memories imported earlier, a reader
 * queries and exports; after a random delay the daemon gets SIGKILL (or SIGTERM, timed); the store
 * is read straight from LMDB; the daemon restarts; the client threads end; the checks of
 * crash_check.c run. Prints one summary line; exits 1 on any violation. The defaults make a short
 * run for `make check`; tests/stress/README.md gives the long ones.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crash.h"
#include "hsamem.h"

#define CLIENT_TIMEOUT_MS 20000
#define EXIT_LIMIT_MS     5000 /* SIGTERM to exit, at most */
#define MAX_LIVE_IMPORTS  6    /* imported memories alive at once, to bound the store */

static struct hsamem *
client(struct cr_run *r)
{
	struct hsamem *c = NULL;
	if (hsamem_open(r->h.url, &c) != 0)
		return NULL;
	hsamem_set_timeout(c, CLIENT_TIMEOUT_MS);
	return c;
}

/* A request failed: a violation unless the daemon had been signalled. The thread ends after it. */
static void
failure(struct cr_run *r, const char *what, const char *user, int ret)
{
	if (!atomic_load(&r->signalled))
		cr_violation(r, "%s %s failed while the daemon ran: %s", what, user,
		             hsamem_strerror(ret));
}

struct writer_arg {
	struct cr_run *r;
	struct cr_writer *w;
	uint64_t rng;
};

static void *
writer_main(void *arg)
{
	struct writer_arg *a = arg;
	struct cr_run *r = a->r;
	struct cr_writer *w = a->w;
	struct hsamem *c = client(r);
	static _Thread_local char texts[3][1024];
	while (c != NULL && !atomic_load(&r->stop)) {
		struct hsamem_entry_in e[3];
		struct hsamem_append_info info;
		uint32_t count = 1 + (uint32_t)st_below(&a->rng, 3);
		memset(e, 0, sizeof(e));
		for (uint32_t i = 0; i < count; i++) {
			st_entry_text(texts[i], sizeof(texts[i]), w->user, w->next_n + i, CR_WORDS);
			e[i].text = texts[i];
			e[i].role = HSAMEM_ROLE_USER;
		}
		int ret = hsamem_append(c, w->user, e, count, NULL, 0, 0, &info);
		if (ret == 0) {
			if (info.count != count || info.first_seq < w->last_seq)
				cr_violation(r, "%s: append of %u got %u entries from seq %llu",
				             w->user, count, info.count,
				             (unsigned long long)info.first_seq);
			cr_ack_add(w, info.first_seq, w->next_n, count, r->trial);
			w->last_seq = info.first_seq + count;
			w->appends++;
			w->entries += count;
		}
		w->next_n += count;
		if (ret != 0) {
			failure(r, "append to", w->user, ret);
			break;
		}
	}
	hsamem_close(c);
	return NULL;
}

static unsigned
live_imports(struct cr_run *r)
{
	unsigned n = 0;
	for (size_t i = 0; i < r->n_objs; i++)
		n += !r->objs[i].gone;
	return n;
}

static void *
importer_main(void *arg)
{
	struct cr_run *r = arg;
	struct hsamem *c = client(r);
	while (c != NULL && !atomic_load(&r->stop)) {
		pthread_mutex_lock(&r->mu);
		struct cr_obj *o = NULL;
		if (live_imports(r) < MAX_LIVE_IMPORTS && r->n_objs < r->cap_objs) {
			o = &r->objs[r->n_objs];
			memset(o, 0, sizeof(*o));
			snprintf(o->name, sizeof(o->name), "imp%zu", r->n_objs);
			o->trial = r->trial;
			r->n_objs++;
			r->imports_tried++;
		}
		pthread_mutex_unlock(&r->mu);
		if (o == NULL) {
			st_sleep_ms(20);
			continue;
		}
		struct st_reader rd = {&r->src.stream, 0};
		int ret = hsamem_import_cb(c, o->name, st_buf_read, &rd, NULL);
		pthread_mutex_lock(&r->mu);
		o->import_acked = ret == 0;
		r->imports_acked += ret == 0;
		pthread_mutex_unlock(&r->mu);
		if (ret != 0) {
			failure(r, "import of", o->name, ret);
			break;
		}
	}
	hsamem_close(c);
	return NULL;
}

struct deleter_arg {
	struct cr_run *r;
	size_t *todo; /* indexes into objs, chosen before the trial */
	size_t n_todo;
	uint64_t rng;
};

static void *
deleter_main(void *arg)
{
	struct deleter_arg *a = arg;
	struct cr_run *r = a->r;
	struct hsamem *c = client(r);
	for (size_t i = 0; c != NULL && i < a->n_todo && !atomic_load(&r->stop); i++) {
		st_sleep_ms((int)st_below(&a->rng, r->o.max_delay_ms / 3 + 1));
		pthread_mutex_lock(&r->mu);
		struct cr_obj *o = &r->objs[a->todo[i]];
		o->delete_tried = true;
		r->deletes_tried++;
		pthread_mutex_unlock(&r->mu);
		int ret = hsamem_delete(c, o->name, NULL);
		pthread_mutex_lock(&r->mu);
		o->delete_acked = ret == 0;
		r->deletes_acked += ret == 0;
		pthread_mutex_unlock(&r->mu);
		if (ret == HSAMEM_ENOUSER)
			cr_violation(r, "%s: found complete before, yet its delete found no memory",
			             o->name);
		else if (ret != 0)
			failure(r, "delete of", o->name, ret);
		if (ret != 0)
			break;
	}
	hsamem_close(c);
	return NULL;
}

/* Queries, reads and exports the source memory and a writer's, for load. */
static void *
reader_main(void *arg)
{
	struct cr_run *r = arg;
	struct hsamem *c = client(r);
	uint64_t rng = r->o.seed * 31 + r->trial;
	while (c != NULL && !atomic_load(&r->stop)) {
		void *res = NULL;
		int ret;
		switch (st_below(&rng, 4)) {
		case 0:
			ret = hsamem_query_text(c, "src", "quiet harbour lantern", 0,
			                        (struct hsamem_query_result **)&res);
			break;
		case 1:
			ret = hsamem_entries(c, "src", st_below(&rng, r->src.entries), 50,
			                     (struct hsamem_entry_list **)&res);
			break;
		case 2: ret = hsamem_stats(c, NULL, (struct hsamem_stats **)&res); break;
		default: {
			struct st_buf b = {0};
			ret = st_export(c, r->w[st_below(&rng, r->o.writers)].user, &b);
			ret = ret == HSAMEM_ENOUSER ? 0
			                            : ret; /* a new generation, not written yet */
			st_buf_free(&b);
		}
		}
		hsamem_result_free(res);
		if (ret != 0) {
			failure(r, "read of", "src", ret);
			break;
		}
		r->reads_done++;
	}
	hsamem_close(c);
	return NULL;
}

/* Sends the trial's signal and waits for the daemon to end. */
static void
signal_daemon(struct cr_run *r, bool term)
{
	int64_t ms;
	atomic_store(&r->signalled, true);
	int status = st_stop(&r->h, term ? SIGTERM : SIGKILL, r->o.hang_ms, &ms);
	if (!term) {
		r->trials_kill++;
		if (status != 128 + SIGKILL)
			cr_violation(r, "the daemon ended with status %d before its SIGKILL",
			             status);
		return;
	}
	r->trials_term++;
	if (ms < 0) {
		r->hangs++;
		cr_violation(r, "the daemon did not exit within %u ms of SIGTERM: killed",
		             r->o.hang_ms);
		return;
	}
	r->exit_ms_total += ms;
	if (ms > r->exit_ms_worst)
		r->exit_ms_worst = ms;
	if (ms > EXIT_LIMIT_MS) {
		r->exits_over_5s++;
		cr_violation(r, "the daemon took %lld ms to exit after SIGTERM", (long long)ms);
	}
	if (status != 0)
		cr_violation(r, "the daemon exited with status %d after SIGTERM", status);
}

/* A writer's memory grown past rotate_entries is checked in full, deleted, and replaced. */
static void
rotate(struct cr_run *r, struct hsamem *c, struct cr_writer *w)
{
	if (w->n_acks == 0 || w->last_seq < r->o.rotate_entries)
		return;
	cr_check_writer(r, c, w);
	int ret = hsamem_delete(c, w->user, NULL);
	if (ret != 0)
		cr_violation(r, "%s: delete after its full check: %s", w->user,
		             hsamem_strerror(ret));
	w->gen++;
	snprintf(w->user, sizeof(w->user), "w%u-%u", w->id, w->gen);
	w->n_acks = w->trial_first = 0;
	w->last_seq = 0;
}

/* The source memory, which every import copies: appended in batches until its K/V and landmarks
 * pass import_kib, so that its stream takes several import batches (4 MiB each). */
static int
make_source(struct cr_run *r)
{
	struct hsamem *c = client(r);
	struct hsamem_stats *st = NULL;
	static char texts[50][2048];
	uint64_t n = 0;
	int ret = c == NULL ? HSAMEM_ECONNECT : 0;
	while (ret == 0) {
		struct hsamem_entry_in e[50];
		memset(e, 0, sizeof(e));
		for (int i = 0; i < 50; i++, n++) {
			st_entry_text(texts[i], sizeof(texts[i]), "src", n, 200);
			e[i].text = texts[i];
			e[i].role = (enum hsamem_role)(1 + n % 4);
		}
		if ((ret = hsamem_append(c, "src", e, 50, NULL, 0, 0, NULL)) != 0 ||
		    (ret = hsamem_stats(c, "src", &st)) != 0)
			break;
		const struct hsamem_memory *m = &st->memories[0];
		bool enough = m->bytes >= (uint64_t)r->o.import_kib << 10;
		r->src.entries = m->entries;
		r->src.chunks = m->chunks;
		r->src.tokens = m->tokens;
		r->src.tail_tokens = m->tail_tokens;
		hsamem_result_free(st);
		if (enough)
			break;
	}
	if (ret == 0)
		ret = st_export(c, "src", &r->src.stream);
	if (ret != 0)
		fprintf(stderr, "crash_trial: cannot make the source memory: %s\n",
		        hsamem_strerror(ret));
	hsamem_close(c);
	return ret;
}

/* One trial; returns false when the daemon could not be restarted. */
static bool
run_trial(struct cr_run *r, bool term)
{
	pthread_t wt[CR_MAX_WRITERS], it, dt, rt;
	struct writer_arg wa[CR_MAX_WRITERS];
	size_t todo[MAX_LIVE_IMPORTS];
	struct deleter_arg da = {r, todo, 0, r->o.seed + r->trial * 7919};

	r->trial++;
	for (size_t i = 0; i < r->n_objs && da.n_todo < 3; i++)
		if (r->objs[i].present && !r->objs[i].gone)
			todo[da.n_todo++] = i;
	atomic_store(&r->stop, false);
	atomic_store(&r->signalled, false);
	for (unsigned i = 0; i < r->o.writers; i++) {
		r->w[i].trial_first = r->w[i].n_acks;
		wa[i] = (struct writer_arg){r, &r->w[i], r->o.seed * 131 + r->trial * 17 + i};
		pthread_create(&wt[i], NULL, writer_main, &wa[i]);
	}
	if (r->o.importers)
		pthread_create(&it, NULL, importer_main, r);
	pthread_create(&dt, NULL, deleter_main, &da);
	pthread_create(&rt, NULL, reader_main, r);

	st_sleep_ms((int)(r->o.max_delay_ms / 20 + st_below(&r->rng, r->o.max_delay_ms)));
	int64_t t1 = st_now_ms();
	signal_daemon(r, term);
	atomic_store(&r->stop, true);
	int64_t t2 = st_now_ms();
	cr_scan_store(r);
	int64_t t3 = st_now_ms();
	/* the client threads' requests sent meanwhile go to the new daemon */
	int ret = harness_start(&r->h);
	int64_t t4 = st_now_ms();
	if (ret != 0) {
		r->restart_failures++;
		cr_violation(r, "the daemon did not restart: %s", hsamem_strerror(ret));
		harness_dump_log(&r->h);
	}
	for (unsigned i = 0; i < r->o.writers; i++)
		pthread_join(wt[i], NULL);
	if (r->o.importers)
		pthread_join(it, NULL);
	pthread_join(dt, NULL);
	pthread_join(rt, NULL);
	if (ret != 0)
		return false;
	r->restarts++;
	int64_t t5 = st_now_ms();

	struct hsamem *c = client(r);
	cr_check_appends(r, c, false);
	cr_check_objects(r, c);
	for (unsigned i = 0; i < r->o.writers; i++)
		rotate(r, c, &r->w[i]);
	hsamem_close(c);
	if (r->o.verbose)
		printf("trial %u (%s): %llu entries checked, %llu imports acknowledged, %llu "
		       "deletes "
		       "acknowledged, %u violations; ms: stop %lld, scan %lld, restart %lld, join "
		       "%lld, check %lld\n",
		       r->trial, term ? "SIGTERM" : "SIGKILL",
		       (unsigned long long)r->entries_checked, (unsigned long long)r->imports_acked,
		       (unsigned long long)r->deletes_acked, r->violations, (long long)(t2 - t1),
		       (long long)(t3 - t2), (long long)(t4 - t3), (long long)(t5 - t4),
		       (long long)(st_now_ms() - t5));
	return true;
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: crash_trial [--mode kill|term|both] [--trials N] [--seconds S] "
	             "[--seed X]\n"
	             "                   [--writers N] [--max-delay-ms MS] [--import-kib KIB]\n"
	             "                   [--rotate-entries N] [--no-imports] [--hang-ms MS] "
	             "[--verbose]\n"
	             "See tests/stress/README.md.\n");
}

static int
parse(struct cr_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"mode", required_argument, NULL, 'm'},
	        {"trials", required_argument, NULL, 't'},
	        {"seconds", required_argument, NULL, 's'},
	        {"seed", required_argument, NULL, 'S'},
	        {"writers", required_argument, NULL, 'w'},
	        {"max-delay-ms", required_argument, NULL, 'd'},
	        {"import-kib", required_argument, NULL, 'i'},
	        {"rotate-entries", required_argument, NULL, 'r'},
	        {"no-imports", no_argument, NULL, 'n'},
	        {"hang-ms", required_argument, NULL, 'H'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int opt;
	*o = (struct cr_opts){.kill = true,
	                      .term = true,
	                      .trials = 6,
	                      .writers = 4,
	                      .max_delay_ms = 1000,
	                      .import_kib = 5000,
	                      .rotate_entries = 4000,
	                      .importers = 1,
	                      .hang_ms = 10000,
	                      .seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32};
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			o->kill = strcmp(optarg, "term") != 0;
			o->term = strcmp(optarg, "kill") != 0;
			if (strcmp(optarg, "kill") && strcmp(optarg, "term") &&
			    strcmp(optarg, "both"))
				return 2;
			break;
		case 't': o->trials = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': o->seconds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': o->seed = strtoull(optarg, NULL, 0); break;
		case 'w': o->writers = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': o->max_delay_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'i': o->import_kib = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': o->rotate_entries = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': o->importers = 0; break;
		case 'H': o->hang_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'v': o->verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: return 2;
		}
	}
	if (optind < argc || o->writers < 1 || o->writers > CR_MAX_WRITERS ||
	    o->max_delay_ms < 20 || o->import_kib < 1 || o->hang_ms < 5000)
		return 2;
	return -1;
}

static void
summary(struct cr_run *r, int64_t ms)
{
	uint64_t appends = 0, entries = 0;
	for (unsigned i = 0; i < r->o.writers; i++) {
		appends += r->w[i].appends;
		entries += r->w[i].entries;
	}
	printf("crash_trial: %u trials in %.0f s (%u SIGKILL, %u SIGTERM), seed %llu: "
	       "%llu appends acknowledged (%llu entries), %llu entries lost; "
	       "%llu of %llu imports and %llu of %llu deletes acknowledged, %llu memories partial "
	       "or wrong (%llu unacknowledged imports found complete, %llu exports compared); "
	       "%u restarts, %u failed; %llu store scans (%llu records); SIGTERM exit worst %lld "
	       "ms, "
	       "mean %lld ms, %u over 5 s, %u hangs; %llu reads; %u violations\n",
	       r->trials_kill + r->trials_term, ms / 1000.0, r->trials_kill, r->trials_term,
	       (unsigned long long)r->o.seed, (unsigned long long)appends,
	       (unsigned long long)entries, (unsigned long long)r->entries_lost,
	       (unsigned long long)r->imports_acked, (unsigned long long)r->imports_tried,
	       (unsigned long long)r->deletes_acked, (unsigned long long)r->deletes_tried,
	       (unsigned long long)r->objects_bad, (unsigned long long)r->unacked_present,
	       (unsigned long long)r->import_full_checks, r->restarts, r->restart_failures,
	       (unsigned long long)r->scans, (unsigned long long)r->scan_records,
	       (long long)r->exit_ms_worst,
	       (long long)(r->trials_term ? r->exit_ms_total / r->trials_term : 0),
	       r->exits_over_5s, r->hangs, (unsigned long long)r->reads_done, r->violations);
}

int
main(int argc, char **argv)
{
	static struct cr_run run;
	struct cr_run *r = &run;
	int ret = parse(&r->o, argc, argv);
	if (ret >= 0) {
		if (ret)
			usage(stderr);
		return ret;
	}
	r->rng = r->o.seed;
	pthread_mutex_init(&r->mu, NULL);
	r->cap_objs = (size_t)r->o.trials * 64 + 64;
	r->objs = calloc(r->cap_objs, sizeof(*r->objs));
	for (unsigned i = 0; i < r->o.writers; i++) {
		r->w[i].id = i;
		snprintf(r->w[i].user, sizeof(r->w[i].user), "w%u-0", i);
	}
	if (r->objs == NULL || harness_init(&r->h) != 0)
		return 1;
	/* a small map, so that it grows during the first trials too */
	r->h.extra[0] = "-o";
	r->h.extra[1] = "map-size=16M";
	int64_t t0 = st_now_ms();
	if (harness_start(&r->h) != 0 || make_source(r) != 0) {
		harness_dump_log(&r->h);
		harness_fini(&r->h);
		return 1;
	}
	for (unsigned t = 0; t < r->o.trials; t++) {
		if (r->o.seconds > 0 && st_now_ms() - t0 > (int64_t)r->o.seconds * 1000)
			break;
		bool term = r->o.term && (!r->o.kill || t % 2 == 1);
		if (!run_trial(r, term))
			break;
	}
	if (harness_alive(&r->h)) {
		struct hsamem *c = client(r);
		cr_check_appends(r, c, true);
		hsamem_close(c);
		int64_t ms;
		ret = st_stop(&r->h, SIGTERM, r->o.hang_ms, &ms);
		if (ret != 0 || ms < 0)
			cr_violation(r,
			             "the daemon's last stop: status %d after %lld ms (-1: hung)",
			             ret, (long long)ms);
		cr_scan_store(r);
	}
	summary(r, st_now_ms() - t0);
	for (unsigned i = 0; i < r->o.writers; i++)
		free(r->w[i].acks);
	if (r->violations)
		harness_dump_log(&r->h);
	harness_fini(&r->h);
	st_buf_free(&r->src.stream);
	free(r->objs);
	return r->violations ? 1 : 0;
}
