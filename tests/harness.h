/*
 * harness.h: starts the real hsamemd for integration tests and benchmarks, on an ipc:// socket and
 * a state directory inside a fresh temporary directory, and stops it with the signal asked for.
 */
#ifndef HSAMEM_HARNESS_H
#define HSAMEM_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

struct harness {
	char dir[256];   /* the temporary directory */
	char url[300];   /* ipc://DIR/hsamemd.sock */
	char state[300]; /* DIR/state */
	char log[300];   /* DIR/hsamemd.log: the daemon's stderr */
	pid_t pid;
	const char
	        *extra[8]; /* further arguments for hsamemd (e.g. "-o", "workers=2"), NULL-ended */
};

/* Makes the temporary directory; the daemon is not started yet. */
int harness_init(struct harness *h);
/* Starts hsamemd and waits (up to 20 s) until it answers a ping. */
int harness_start(struct harness *h);
/* Sends sig (SIGTERM, SIGKILL, ...) and waits; returns the exit status, 128+signal if killed. */
int harness_stop(struct harness *h, int sig);
/* Stops a running daemon with SIGKILL and removes the temporary directory. */
void harness_fini(struct harness *h);
/* Whether the daemon process is still alive. */
bool harness_alive(struct harness *h);
/* Prints the daemon's log to stderr (for failed tests). */
void harness_dump_log(struct harness *h);

#endif
