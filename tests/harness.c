/*
 * harness.c: fork and exec of the built hsamemd ($HSAMEM_TOP_BUILDDIR/hsamemd, else ./hsamemd).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hsamem.h"

int
harness_init(struct harness *h)
{
	const char *tmp = getenv("TMPDIR");
	memset(h, 0, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "%s/hsamem-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(h->dir) == NULL)
		return -errno;
	snprintf(h->url, sizeof(h->url), "ipc://%s/hsamemd.sock", h->dir);
	snprintf(h->state, sizeof(h->state), "%s/state", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/hsamemd.log", h->dir);
	return 0;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

int
harness_start(struct harness *h)
{
	char bin[512];
	const char *top = getenv("HSAMEM_TOP_BUILDDIR");
	snprintf(bin, sizeof(bin), "%s/hsamemd", top && *top ? top : ".");
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		const char *argv[32] = {
		        bin, "-l", h->url, "-d", h->state, "-o", "log-level=notice"};
		int argc = 7;
		/* the source tree's model, wherever the tree was copied (the GPU host); extra may
		 * override */
		char model[600];
		const char *src = getenv("HSAMEM_TOP_SRCDIR");
		if (src != NULL && *src != '\0') {
			snprintf(model, sizeof(model), "model-dir=%s/models/hsa-small", src);
			argv[argc++] = "-o";
			argv[argc++] = model;
		}
		for (int i = 0; i < 8 && h->extra[i] != NULL; i++)
			argv[argc++] = h->extra[i];
		int fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		execv(bin, (char *const *)argv);
		fprintf(stderr, "harness: cannot run %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	h->pid = pid;
	struct hsamem *c = NULL;
	int ret = hsamem_open(h->url, &c);
	if (ret != 0)
		return ret;
	hsamem_set_timeout(c, 1000);
	for (int i = 0; i < 2000; i++) {
		struct hsamem_server *s = NULL;
		if ((ret = hsamem_ping(c, &s)) == 0) {
			hsamem_result_free(s);
			break;
		}
		if (!harness_alive(h)) {
			ret = -ECHILD;
			break;
		}
		sleep_ms(10);
	}
	hsamem_close(c);
	return ret;
}

bool
harness_alive(struct harness *h)
{
	int status;
	if (h->pid <= 0)
		return false;
	if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
		h->pid = 0;
		return false;
	}
	return true;
}

int
harness_stop(struct harness *h, int sig)
{
	int status = 0;
	if (h->pid <= 0)
		return -ECHILD;
	kill(h->pid, sig);
	while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR)
		;
	h->pid = 0;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

void
harness_dump_log(struct harness *h)
{
	FILE *f = fopen(h->log, "r");
	char line[1024];
	if (f == NULL)
		return;
	fprintf(stderr, "---- hsamemd log ----\n");
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

void
harness_fini(struct harness *h)
{
	char cmd[400];
	if (h->pid > 0)
		harness_stop(h, SIGKILL);
	if (h->dir[0] != '\0' && getenv("HSAMEM_KEEP_TEST_DIR") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "harness: cannot remove %s\n", h->dir);
	}
}
