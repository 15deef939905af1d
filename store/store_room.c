/*
 * store_room.c: what the store says when a write finds no room (store.h, ROOM): it tells a write
 * cut short by a full file system or by the file size limit from a failing disk (LMDB reports
 * all three as EIO), and says in a sentence what is full and what to do about it. It only looks
 * (at the file, its file system and the process's limits): it calls nothing of store.c, never
 * writes, and never grows the map (store_grow) or makes room (store_recycle), which store.c does.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lmdb.h>

#include "log.h"
#include "store.h"
#include "store_int.h"

const char *
store_size_str(char *buf, size_t len, uint64_t bytes)
{
	if (bytes >= 1 << 20)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
	else
		snprintf(buf, len, "%llu KiB", (unsigned long long)(bytes >> 10));
	return buf;
}

/* A write cut short on a file system with less room than this left found it full. */
#define SHORT_WRITE_ROOM (1u << 20)

/* Bytes of the file system of fd that this process may still write, or -1 when unknown. */
static long long
room_left(int fd)
{
	struct statvfs vfs;
	if (fstatvfs(fd, &vfs) != 0)
		return -1;
	/* root may also write the blocks reserved for it */
	return (long long)(geteuid() == 0 ? vfs.f_bfree : vfs.f_bavail) * (long long)vfs.f_frsize;
}

int
store_short_write(struct store *st)
{
	struct rlimit rl;
	struct stat sb;
	long long left;
	int fd;

	if (mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &sb) != 0)
		return EIO;
	if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (unsigned long long)sb.st_size + (unsigned long long)sysconf(_SC_PAGESIZE) >
	            (unsigned long long)rl.rlim_cur)
		return EFBIG;
	left = room_left(fd);
	if (left >= 0 && left < SHORT_WRITE_ROOM)
		return ENOSPC;
	log_err("store: a write failed with an I/O error with %lld KiB left on the file system "
	        "(a failing disk, or a quota: LMDB reports a write cut short as EIO)",
	        left >= 0 ? left >> 10 : -1);
	return EIO;
}

void
store_full_message(struct store *st, int ret, char *buf, size_t len)
{
	const char *dir = "?";
	char size[32];
	struct rlimit rl;
	MDB_envinfo info;
	long long left = -1;
	int fd;

	mdb_env_get_path(st->env, &dir);
	if (mdb_env_get_fd(st->env, &fd) == 0)
		left = room_left(fd);
	switch (ret) {
	case HSAMEM_EFULL:
		if (mdb_env_info(st->env, &info) != 0)
			info.me_mapsize = 0;
		snprintf(buf, len,
		         "map-max reached: the store's map is at its largest size, %s (map-max); "
		         "delete memories to make room, or raise map-max (hsamem.conf(5)) and "
		         "restart hsamemd",
		         store_size_str(size, sizeof(size), info.me_mapsize));
		break;
	case -ENOSPC:
		snprintf(
		        buf, len,
		        "disk full: the file system of %s has %s free; free space there, or delete "
		        "memories to make room",
		        dir,
		        left >= 0 ? store_size_str(size, sizeof(size), (uint64_t)left) : "no room");
		break;
	case -EDQUOT:
		snprintf(buf, len,
		         "disk quota exceeded: the quota of hsamemd's user on %s is used up; raise "
		         "it, "
		         "or delete memories to make room",
		         dir);
		break;
	case -EFBIG:
		if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
			rl.rlim_cur = 0;
		snprintf(buf, len,
		         "file size limit reached: the store's file is at hsamemd's limit of %s "
		         "(RLIMIT_FSIZE, LimitFSIZE= in systemd); raise it and restart hsamemd, or "
		         "delete memories to make room",
		         store_size_str(size, sizeof(size), (uint64_t)rl.rlim_cur));
		break;
	default: snprintf(buf, len, "store: %s", hsamem_strerror(ret)); break;
	}
}
