/*
 * job.c: failing a job with a message, and the clocks. The job's life is in job.h; this file must
 * not know which operation a job carries.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "job.h"

int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
job_fail(struct job *job, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	job->reply.status = status;
	job->reply.message = arena_strndup(&job->arena, msg, strlen(msg));
	job->reply.body_case = HSAMEM__REPLY__BODY__NOT_SET;
	return status;
}
