/*
 * audit.h: the audit trail and the slow-request log (hsamemd(8), AUDIT). Every request that
 * changes state (create, delete, import, reencode, flush) leaves one info line naming the
 * operation, the memory, the peer as the access policy identified it, and the result. Appends,
 * which come by the thousand, are summarised: the first of a connection and memory is logged at
 * once, then one line per audit-interval seconds says how many came, how many entries they held
 * and how many failed. A request that took longer than slow-request leaves a warning with the
 * time it waited in the queue, worked, and waited for its group commit.
 *
 * A refused request is not audited here: the access policy logs refusals (acl_log_denied), at a
 * bounded rate, so that a hostile client cannot flood the log.
 */
#ifndef HSAMEM_AUDIT_H
#define HSAMEM_AUDIT_H

#include <stdint.h>

struct audit;
struct conf;
struct job;

/* Starts the thread that writes the append summaries. Returns 0 or a negative errno. */
int audit_start(const struct conf *c, struct audit **out);
/* Writes the summaries still owed and stops the thread. NULL-safe. */
void audit_stop(struct audit *a);
/* Audits a job whose reply is about to be sent (elapsed: since it arrived). NULL-safe. */
void audit_job(struct audit *a, const struct job *job, int64_t elapsed_ns);

#endif
