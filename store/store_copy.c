/*
 * store_copy.c: whole copies of the store (store.h, BACKUP AND COMPACTION): a backup into a
 * directory while the store serves, and compaction, which copies the live pages into a new
 * data.mdb and swaps it in. Compaction uses LMDB's compacting copy (mdb_env_copyfd2 with
 * MDB_CP_COMPACT), which walks one read snapshot and writes only the pages in use, renumbered,
 * with no free list: the copy is as small as the data. A backup takes it too when the free pages
 * are more than BACKUP_FREE_SHARE of the file's; otherwise LMDB's plain copy of the same snapshot
 * (the file's pages in order, free ones too), which costs what writing the file costs, where the
 * walk costs several times that (bench/RESULTS.md). A backup's file is written with O_DIRECT, as
 * LMDB's own mdb_env_copy2 writes, so that 2 GiB of copy do not pass through the page cache and
 * its writeback while the store serves from it, and at most the rate the daemon is configured
 * with (backup-rate): LMDB writes into a pipe, and a thread of this file writes on to the file
 * in whole buffers, sleeping when it is ahead of the rate, which keeps the latency of the
 * requests served meanwhile (bench/RESULTS.md). LMDB does the copying; this file owns where it
 * goes, how it lands whole (a temporary name, fsync, rename, fsync of the directory), and how a
 * copy keeps out of the way of the rest of the store.
 *
 * A copy's read transaction takes no place in the gate (store.c), so transactions go on beside
 * it; it is counted in st->copying instead. While one runs, the map does not move (store_grow
 * waits for it: a remap would pull the pages from under it; a backup grows the map first when
 * more than half of it is used, so that this is rare) and the environment is not reopened (an
 * erasure, which would clear pages the copy reads and reopen the environment, is put off: the
 * end of the copy runs it). A long copy also holds back the reuse of the pages freed meanwhile,
 * as every LMDB reader does: the file grows by what is written during it.
 *
 * COMPACTION copies while the store serves, then takes the gate exclusively (every transaction
 * of this process waits), copies again only if something was committed since the first copy
 * began, syncs the copy, renames it over data.mdb, syncs the directory and reopens the
 * environment (store_env_reopen, as erasure does). A crash at any point leaves either the old
 * data.mdb or the new one whole: the rename is atomic, and the copy was synced before it. A
 * compacted file starts LMDB's transaction counter again, which lock.mdb of another process that
 * has the store open would contradict: compaction refuses while one has (it holds LMDB's lock on
 * lock.mdb, listed in /proc/locks).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "log.h"
#include "store.h"
#include "store_int.h"

#define PART_NAME    "data.mdb.part"
#define COMPACT_NAME "data.mdb.compact"

/* A backup compacts when more than this share of the file's pages is free (1/8). */
#define BACKUP_FREE_SHARE 8

/* dir/name into buf (4096 bytes); false when it does not fit. */
static bool
join(char *buf, const char *dir, const char *name)
{
	int n = snprintf(buf, 4096, "%s/%s", dir, name);
	return n >= 0 && n < 4096;
}

static uint64_t
ms_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static int
sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int ret = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return ret;
}

/* Creates dir, or takes it when it is an empty directory: *made says which. HSAMEM_EINVAL for a
 * relative path, HSAMEM_EEXIST for anything else that is there, or -errno. */
static int
backup_dir(const char *dir, bool *made)
{
	*made = false;
	if (dir[0] != '/')
		return HSAMEM_EINVAL;
	if (mkdir(dir, 0700) == 0) {
		*made = true;
		return 0;
	}
	if (errno != EEXIST)
		return -errno;
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOTDIR ? HSAMEM_EEXIST : -errno;
	struct dirent *e;
	int ret = 0;
	while (ret == 0 && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			ret = HSAMEM_EEXIST;
	closedir(d);
	return ret;
}

/*
 * The free pages of the newest snapshot: the page numbers its free list holds (LMDB's free
 * database, 0, maps a transaction id to a list of page numbers whose first word is their count,
 * as mdb_stat -f reads it). 0 when it cannot be read, which makes a backup plain.
 */
static uint64_t
free_pages(struct store *st)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t n = 0;
	if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0)
		return 0;
	if (mdb_cursor_open(txn, 0, &cur) == 0) {
		while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
			if (v.mv_size >= sizeof(size_t))
				n += *(const size_t *)v.mv_data;
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return n;
}

/* A paced copy's writes: one buffer, aligned for O_DIRECT. */
#define PACE_BUF (1u << 20)

/* The writing end of a paced copy: what LMDB writes into a pipe, read back and written to out
 * at most rate bytes a second. */
struct pacer {
	int in, out;
	uint64_t rate;
	char *buf; /* PACE_BUF bytes */
	int err;   /* -errno of the first failed read or write; after it the pipe is only drained */
};

static void *
pacer_main(void *arg)
{
	struct pacer *p = arg;
	uint64_t done = 0, t0 = ms_now();
	for (ssize_t n = 1; n > 0;) {
		/* whole buffers (O_DIRECT wants aligned lengths; LMDB writes whole pages) */
		size_t fill = 0;
		while (fill < PACE_BUF && (n = read(p->in, p->buf + fill, PACE_BUF - fill)) > 0)
			fill += (size_t)n;
		if (n < 0 && p->err == 0)
			p->err = -errno;
		ssize_t w = fill > 0 && p->err == 0 ? write(p->out, p->buf, fill) : (ssize_t)fill;
		if (w != (ssize_t)fill && p->err == 0)
			p->err = w < 0 ? -errno : -EIO;
		done += fill;
		uint64_t due = t0 + done * 1000 / p->rate, now = ms_now();
		if (p->err == 0 && due > now) {
			struct timespec ts = {(time_t)((due - now) / 1000),
			                      (long)((due - now) % 1000) * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* LMDB's copy into fd at most rate bytes a second, through a pipe and a writer thread. */
static int
copy_paced(MDB_env *env, int fd, unsigned flags, uint64_t rate)
{
	struct pacer p = {.out = fd, .rate = rate};
	int pfd[2], rc;
	pthread_t th;
	if (posix_memalign((void **)&p.buf, 4096, PACE_BUF) != 0)
		return ENOMEM;
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		rc = errno;
		free(p.buf);
		return rc;
	}
	fcntl(pfd[1], F_SETPIPE_SZ, PACE_BUF); /* fewer wake-ups; the default also works */
	p.in = pfd[0];
	if ((rc = pthread_create(&th, NULL, pacer_main, &p)) == 0) {
		rc = mdb_env_copyfd2(env, pfd[1], flags);
		close(pfd[1]);
		pthread_join(th, NULL);
	} else {
		close(pfd[1]);
	}
	close(pfd[0]);
	free(p.buf);
	return rc != 0 ? rc : -p.err;
}

/* LMDB's copy of the newest snapshot into fd, as a copy (store_copy_enter): compacting when
 * *compact, else compacting only when the free pages are a large share (it then sets *compact);
 * at most rate bytes a second (0: as fast as it goes). */
static int
copy_into(struct store *st, int fd, uint64_t *txnid, bool *compact, uint64_t rate)
{
	MDB_envinfo info;
	int ret = store_copy_enter(st);
	if (ret != 0)
		return ret;
	int rc = mdb_env_info(st->env, &info);
	if (rc == 0) {
		*txnid = info.me_last_txnid;
		if (!*compact)
			*compact = free_pages(st) * BACKUP_FREE_SHARE > info.me_last_pgno + 1;
		unsigned flags = *compact ? MDB_CP_COMPACT : 0;
		rc = rate > 0 ? copy_paced(st->env, fd, flags, rate)
		              : mdb_env_copyfd2(st->env, fd, flags);
	}
	store_copy_leave(st);
	return rc == 0 ? 0 : store_lmdb_error("copy", rc);
}

/* Grows the map first when more than half of it is used: growth waits for a copy to end. */
static void
room_for_a_copy(struct store *st)
{
	MDB_envinfo info;
	MDB_stat stat;
	if (store_copy_enter(st) != 0)
		return;
	bool grow = mdb_env_info(st->env, &info) == 0 && mdb_env_stat(st->env, &stat) == 0 &&
	            (uint64_t)(info.me_last_pgno + 1) * stat.ms_psize > info.me_mapsize / 2 &&
	            info.me_mapsize < st->map_max;
	store_copy_leave(st);
	if (grow)
		store_grow(st);
}

/* The erasure a copy put off (store_erase.c). */
static void
erase_owed(struct store *st)
{
	if (atomic_load(&st->erase_wanted))
		store_erase(st, false);
}

int
store_backup(struct store *st, const char *dir, uint64_t rate, struct store_copy_info *out)
{
	char part[4096], final[4096];
	uint64_t t0 = ms_now(), txnid;
	struct stat sb;
	bool made, compact = false;
	int fd = -1, ret;

	*out = (struct store_copy_info){0};
	if (!join(part, dir, PART_NAME) || !join(final, dir, "data.mdb"))
		return HSAMEM_EINVAL;
	if ((ret = backup_dir(dir, &made)) != 0)
		return ret;
	/* past the page cache, as LMDB's own mdb_env_copy2 writes, where the file system allows */
	fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0600);
	if (fd < 0 && errno == EINVAL)
		fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	room_for_a_copy(st);
	if ((ret = copy_into(st, fd, &txnid, &compact, rate)) != 0)
		goto fail;
	if (fsync(fd) != 0 || fstat(fd, &sb) != 0 || close(fd) != 0) {
		ret = -errno;
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(part, final) != 0 || (ret = sync_dir(dir)) != 0) {
		ret = ret != 0 ? ret : -errno;
		goto fail;
	}
	erase_owed(st);
	out->bytes = (uint64_t)sb.st_size;
	out->ms = ms_now() - t0;
	log_notice("store: backup of %llu bytes (transaction %llu, %s copy) into %s in %llu ms",
	           (unsigned long long)out->bytes, (unsigned long long)txnid,
	           compact ? "compacting" : "plain", dir, (unsigned long long)out->ms);
	return 0;

fail:
	if (fd >= 0)
		close(fd);
	unlink(part);
	unlink(final);
	if (made)
		rmdir(dir);
	erase_owed(st);
	log_err("store: backup into %s failed: %s", dir,
	        ret < 0 && ret > -4096 ? strerror(-ret) : hsamem_strerror(ret));
	return ret;
}

/*
 * Whether another process has the environment open: it holds LMDB's fcntl lock on lock.mdb,
 * which /proc/locks lists with its pid. (A probe with F_GETLK would need a descriptor of
 * lock.mdb, and closing one drops every fcntl lock this process holds on the file, LMDB's.)
 * Unknown (no /proc) counts as no, and is logged.
 */
static bool
others_open(const char *dir)
{
	char lock[4096], line[256];
	struct stat sb;
	bool other = false;
	if (!join(lock, dir, "lock.mdb") || stat(lock, &sb) != 0)
		return false;
	FILE *f = fopen("/proc/locks", "re");
	if (f == NULL) {
		log_warn("store: cannot read /proc/locks to see whether another process has the "
		         "store open");
		return false;
	}
	while (!other && fgets(line, sizeof(line), f) != NULL) {
		unsigned maj, min;
		unsigned long long ino;
		int pid;
		if (sscanf(line, "%*d: POSIX %*s %*s %d %x:%x:%llu", &pid, &maj, &min, &ino) == 4 &&
		    pid != (int)getpid() && ino == (unsigned long long)sb.st_ino &&
		    maj == major(sb.st_dev) && min == minor(sb.st_dev))
			other = true;
	}
	fclose(f);
	return other;
}

/* With the gate held: the copy brought up to date when needed, synced, renamed over data.mdb,
 * the directory synced, the environment reopened. */
static int
swap_in(struct store *st, const char *dir, int fd, const char *tmp, uint64_t txnid)
{
	char data[4096];
	MDB_envinfo info;
	int rc, ret;
	if (!join(data, dir, "data.mdb"))
		return HSAMEM_EINVAL;
	if (st->env == NULL)
		return HSAMEM_ESTORE;
	if ((rc = mdb_env_info(st->env, &info)) != 0)
		return store_lmdb_error("compact", rc);
	if (info.me_last_txnid != txnid) { /* committed meanwhile: copy again, now still */
		if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
			return -errno;
		if ((rc = mdb_env_copyfd2(st->env, fd, MDB_CP_COMPACT)) != 0)
			return store_lmdb_error("compact", rc);
		log_info("store: compaction copied again (transaction %llu)",
		         (unsigned long long)info.me_last_txnid);
	}
	if (fsync(fd) != 0)
		return -errno;
	if (rename(tmp, data) != 0)
		return -errno;
	if ((ret = sync_dir(dir)) != 0)
		return ret;
	ret = store_env_reopen(st); /* the new file from here on */
	st->erase_waiting = 0;
	return ret;
}

static uint64_t
file_size(const char *dir)
{
	char data[4096];
	struct stat sb;
	return join(data, dir, "data.mdb") && stat(data, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

int
store_compact(struct store *st, struct store_copy_info *out)
{
	char dir[4096], tmp[4096];
	const char *path;
	uint64_t t0 = ms_now(), t1, txnid;
	bool marked = false;
	int fd = -1, ret;

	*out = (struct store_copy_info){0};
	if ((ret = store_copy_enter(st)) != 0)
		return ret;
	ret = mdb_env_get_path(st->env, &path) == 0 && strlen(path) < sizeof(dir) - 32
	              ? 0
	              : HSAMEM_EINTERNAL;
	if (ret == 0)
		memcpy(dir, path, strlen(path) + 1);
	store_copy_leave(st);
	if (ret != 0 || !join(tmp, dir, COMPACT_NAME))
		return ret != 0 ? ret : HSAMEM_EINTERNAL;
	if (others_open(dir))
		return HSAMEM_EBUSY;
	out->before = file_size(dir);
	unlink(tmp); /* left by a compaction that stopped */
	if ((fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return -errno;
	bool compact = true;
	if ((ret = copy_into(st, fd, &txnid, &compact, 0)) != 0)
		goto out;
	t1 = ms_now();
	if ((ret = store_gate_trylock(st)) != 0)
		goto out;
	ret = others_open(dir) ? HSAMEM_EBUSY : swap_in(st, dir, fd, tmp, txnid);
	store_gate_unlock(st);
	out->pause_ms = ms_now() - t1;
	if (ret == 0 && store_erase_marked(st, &marked) == 0 && marked)
		store_erase_want(st); /* an erasure that was owed is owed by the new file too */
out:
	close(fd);
	if (ret != 0)
		unlink(tmp);
	erase_owed(st);
	out->bytes = file_size(dir);
	out->ms = ms_now() - t0;
	if (ret == 0)
		log_notice("store: compacted from %llu to %llu bytes in %llu ms, of which %llu ms "
		           "paused",
		           (unsigned long long)out->before, (unsigned long long)out->bytes,
		           (unsigned long long)out->ms, (unsigned long long)out->pause_ms);
	else
		log_err("store: compaction failed: %s",
		        ret < 0 && ret > -4096 ? strerror(-ret) : hsamem_strerror(ret));
	return ret;
}
