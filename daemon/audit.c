/*
 * audit.c: the audit trail and the slow-request log (audit.h). Appends are summarised in a small
 * table of (connection, memory) pairs under one mutex, taken only by appends that have passed
 * the access check; the table's thread writes each pair's line once per audit-interval and drops
 * pairs that saw no append in the last interval. A full table writes every line it holds at once
 * and starts again, so memory stays bounded whatever the clients do. The other writes are logged
 * when their reply is sent. This file decides what is logged; it changes nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "conf.h"
#include "daemon.h"
#include "dispatch.h"
#include "hsamem_defs.h"
#include "job.h"
#include "log.h"

#define AUDIT_PAIRS 256

struct pair {
	uint32_t conn;
	char memory[HSAMEM_NAME_MAX + 1];
	char who[ACL_WHO_MAX];
	uint64_t requests, entries, failed; /* since the last line */
	bool used;
};

struct audit {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool stop;
	unsigned interval_s;
	int64_t slow_ns; /* 0: off */
	struct pair pairs[AUDIT_PAIRS];
};

static void
pair_log(struct pair *p, unsigned interval_s)
{
	log_info(
	        "audit: append to memory '%s' by %s on connection %u: %llu requests, %llu entries, "
	        "%llu failed in the last %u s",
	        p->memory, p->who, p->conn, (unsigned long long)p->requests,
	        (unsigned long long)p->entries, (unsigned long long)p->failed, interval_s);
	p->requests = p->entries = p->failed = 0;
}

/* Writes every pair's line; drops the pairs that had nothing to say (or all, when all). Holds
 * the mutex. */
static void
flush_pairs(struct audit *a, bool all)
{
	for (unsigned i = 0; i < AUDIT_PAIRS; i++) {
		struct pair *p = &a->pairs[i];
		if (!p->used)
			continue;
		if (p->requests == 0 || all)
			p->used = p->requests != 0 && !all;
		if (p->requests != 0)
			pair_log(p, a->interval_s);
	}
}

static void *
audit_main(void *arg)
{
	struct audit *a = arg;
	pthread_mutex_lock(&a->mu);
	while (!a->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += a->interval_s;
		while (!a->stop && pthread_cond_timedwait(&a->cv, &a->mu, &ts) != ETIMEDOUT)
			;
		flush_pairs(a, a->stop);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int
audit_start(const struct conf *c, struct audit **out)
{
	struct audit *a = calloc(1, sizeof(*a));
	int ret;
	if (a == NULL)
		return -ENOMEM;
	a->interval_s = c->audit_interval;
	a->slow_ns = (int64_t)c->slow_request_ms * 1000000;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if ((ret = pthread_create(&a->thread, NULL, audit_main, a)) != 0) {
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return -ret;
	}
	*out = a;
	return 0;
}

void
audit_stop(struct audit *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

/* Counts an append in its pair's summary; the first of a pair is logged at once. */
static void
audit_append(struct audit *a, const struct job *job, const char *memory)
{
	struct pair *p = NULL, *free_slot = NULL;
	pthread_mutex_lock(&a->mu);
	for (unsigned i = 0; i < AUDIT_PAIRS && p == NULL; i++) {
		struct pair *q = &a->pairs[i];
		if (!q->used)
			free_slot = free_slot != NULL ? free_slot : q;
		else if (q->conn == job->conn && strcmp(q->memory, memory) == 0 &&
		         strcmp(q->who, job->id.who) == 0)
			p = q;
	}
	if (p == NULL) {
		if (free_slot == NULL) {
			flush_pairs(a, true);
			free_slot = &a->pairs[0];
		}
		p = free_slot;
		memset(p, 0, sizeof(*p));
		p->used = true;
		p->conn = job->conn;
		snprintf(p->memory, sizeof(p->memory), "%s", memory);
		snprintf(p->who, sizeof(p->who), "%s", job->id.who);
		log_info("audit: append to memory '%s' by %s on connection %u: %s (further appends "
		         "of this connection are summarised every %u s)",
		         memory, p->who, p->conn,
		         job->reply.status == 0 ? "ok" : hsamem_strerror(job->reply.status),
		         a->interval_s);
	} else {
		p->requests++;
		p->entries += job->n_entries;
		p->failed += job->reply.status != 0;
	}
	pthread_mutex_unlock(&a->mu);
}

static double
ms_between(int64_t from, int64_t to)
{
	return from != 0 && to >= from ? (double)(to - from) / 1e6 : 0;
}

static void
audit_slow(const struct job *job, const char *memory, int64_t elapsed_ns)
{
	int64_t end = job->t0_ns + elapsed_ns;
	int64_t work_end = job->t_submit_ns != 0 ? job->t_submit_ns : end;
	log_warn("slow request: %s of memory '%s' by %s took %.1f ms (queue %.1f ms, work %.1f ms, "
	         "commit %.1f ms): %s",
	         dispatch_name(job->op), memory != NULL ? memory : "(none)",
	         job->t_work_ns != 0 ? job->id.who : "(not identified)", (double)elapsed_ns / 1e6,
	         ms_between(job->t0_ns, job->t_work_ns != 0 ? job->t_work_ns : end),
	         ms_between(job->t_work_ns, work_end),
	         ms_between(job->t_submit_ns, job->t_commit_ns != 0 ? job->t_commit_ns : end),
	         job->reply.status == 0 ? "ok" : hsamem_strerror(job->reply.status));
}

void
audit_job(struct audit *a, const struct job *job, int64_t elapsed_ns)
{
	if (a == NULL)
		return;
	const char *memory = dispatch_memory(job);
	if (a->slow_ns > 0 && elapsed_ns >= a->slow_ns)
		audit_slow(job, memory, elapsed_ns);
	/* a request refused or never identified was logged by the access policy, if at all */
	if (!dispatch_is_write(job->op) || job->t_work_ns == 0 || job->reply.status == HSAMEM_EPERM)
		return;
	if (dispatch_is_append(job->op) && memory != NULL) {
		audit_append(a, job, memory);
		return;
	}
	log_info("audit: %s of memory '%s' by %s: %s%s%s", dispatch_name(job->op),
	         memory != NULL ? memory : "(none)", job->id.who,
	         job->reply.status == 0 ? "ok" : hsamem_strerror(job->reply.status),
	         job->reply.message != NULL && job->reply.status != 0 ? ": " : "",
	         job->reply.message != NULL && job->reply.status != 0 ? job->reply.message : "");
}
