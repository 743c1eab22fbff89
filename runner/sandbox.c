/* sandbox.c - the step sandbox (see sandbox.h for the phases, docs/sandbox.md for the policy).
 *
 * The runner prepares everything in rn_sandbox_plan_new: the clone flags, the uid/gid map strings,
 * a list of mount operations with every path as a ready string (bubblewrap style), the rlimits,
 * the step's cgroups (created, limits written) and the seccomp program (built once per process
 * with libseccomp and exported to memory). The shim and the command child then only walk that
 * plan with raw syscalls: no malloc, no stdio, no libseccomp, no locale-dependent libc.
 *
 * Mount plan, in this order (each op is one entry of p->ops):
 *   OPEN    open an O_PATH fd of a path that must stay visible (before /tmp is covered)
 *   PROC    a fresh /proc for the new pid namespace
 *   TMPFS   private /tmp and /dev/shm
 *   MKDIR / MKFILE   mount points inside the new tmpfs for the paths that lived under it
 *   BIND    bind from /proc/self/fd/N (the fd opened above) or a path onto itself
 *   RO      read-only, recursive or not (mount_setattr, else remount per mount)
 *   RW      writable again, one mount (for the workspace, RUNNER_TEMP, /tmp, /proc with
 *           read-only-root)
 * The fds are closed when the plan is done. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sandbox.h"
#include "error.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* <linux/mount.h> clashes with glibc's <sys/mount.h>: the few definitions we need. */
struct sb_mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#define SB_MOUNT_ATTR_RDONLY 0x00000001ULL
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

/* The command child runs on a stack ASan does not know (proc.c's vfork-like clone). */
#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
#define SB_CHILD __attribute__((no_sanitize("address")))
#endif
#endif
#ifndef SB_CHILD
#define SB_CHILD
#endif

enum sb_op_kind { OP_OPEN = 1, OP_PROC, OP_TMPFS, OP_MKDIR, OP_MKFILE, OP_BIND, OP_RO, OP_RW };

struct sb_op {
	int kind;
	char *path;    /* the target (OPEN: the path to open) */
	int slot;      /* OPEN: the slot filled; BIND: the source slot, -1 = path itself */
	int flag;      /* OPEN: a directory; RO: recursive */
};

#define SB_MAX_SLOTS 16
#define SB_MAX_CG 4
#define SB_MAX_RL 6

enum { CG_MEM = 1, CG_PIDS = 2, CG_CPU = 4 };

struct sb_cgroup {
	int ver;
	int what;    /* CG_* */
	char *dir;
	char *procs; /* dir/cgroup.procs */
	int removed;
};

struct sb_rlimit {
	int res;
	rlim_t soft, hard;
};

struct rn_sandbox_plan {
	unsigned long clone_flags;
	int userns, mntns, pidns, netns, utsns, ipcns;
	char uid_map[48], gid_map[48];
	size_t uid_map_len, gid_map_len;
	struct sb_op *ops;
	size_t nops, capops;
	int use_setattr;
	char *cwd;
	char hostname[64];
	size_t hostname_len;
	struct sb_rlimit rl[SB_MAX_RL];
	size_t nrl;
	int nnp;
	int seccomp;
	struct sock_fprog fprog;
	int parent_pidfd;
	struct sb_cgroup cg[SB_MAX_CG];
	size_t ncg;
	int shim_oom_adj;       /* lower the shim's oom_score_adj (it must not be the OOM victim) */
	char oom_restore[16];   /* the value the command gets back */
	size_t oom_restore_len;
	int64_t cpu_limit_s;
	char **notices;
	size_t nnotices, capnotices;
	int collected;
};

/* Child failure stages (*stage); ops and cgroups carry their index. */
enum {
	ST_PDEATHSIG = 1,
	ST_PARENT,
	ST_UIDMAP,
	ST_PRIVATE,
	ST_HOSTNAME,
	ST_LO,
	ST_CHDIR,
	ST_NNP,
	ST_SECCOMP,
	ST_OOMADJ,
	ST_CGROUP = 100,  /* + cgroup index */
	ST_RLIMIT = 200,  /* + rlimit index */
	ST_OP = 1000      /* + op index */
};

/* ---- async-signal-safe helpers (shim, command child, probe child) */

SB_CHILD static char *sb_put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

SB_CHILD static char *sb_put_num(char *p, long v)
{
	char tmp[24];
	int n = 0;
	unsigned long u = v < 0 ? (unsigned long)-(v + 1) + 1 : (unsigned long)v;
	if (v < 0)
		*p++ = '-';
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* Write buf to path (O_WRONLY, no create): 0 or -errno. */
SB_CHILD static int sb_write_file(const char *path, const char *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t k;
	do
		k = write(fd, buf, len);
	while (k < 0 && errno == EINTR);
	int err = k < 0 ? errno : (size_t)k != len ? EIO : 0;
	close(fd);
	return -err;
}

/* 1 if path is top or lies under it ("/" holds everything). */
static int sb_under(const char *path, const char *top)
{
	size_t n = strlen(top);
	if (n == 1 && top[0] == '/')
		return path[0] == '/';
	return strncmp(path, top, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int sb_setattr(const char *path, int recursive, uint64_t set, uint64_t clr)
{
	struct sb_mount_attr a;
	memset(&a, 0, sizeof(a));
	a.attr_set = set;
	a.attr_clr = clr;
	if (syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &a, sizeof(a)) < 0)
		return -errno;
	return 0;
}

/* The flags a bind remount must repeat (a mount in a user namespace cannot drop locked ones). */
static unsigned long sb_mount_flags(const char *path)
{
	struct statfs sf;
	if (statfs(path, &sf) < 0)
		return 0;
	unsigned long f = 0;
	if (sf.f_flags & ST_RDONLY)
		f |= MS_RDONLY;
	if (sf.f_flags & ST_NOSUID)
		f |= MS_NOSUID;
	if (sf.f_flags & ST_NODEV)
		f |= MS_NODEV;
	if (sf.f_flags & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sf.f_flags & ST_NOATIME)
		f |= MS_NOATIME;
	if (sf.f_flags & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sf.f_flags & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

static int sb_remount(const char *path, int rdonly)
{
	unsigned long f = sb_mount_flags(path) & ~(unsigned long)MS_RDONLY;
	if (rdonly)
		f |= MS_RDONLY;
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | f, NULL) < 0)
		return -errno;
	return 0;
}

/* Scratch for the mountinfo walk (child-only: the process's own copy). */
static char g_mi_buf[4096];
static char g_mi_line[8192];
static char g_mi_path[PATH_MAX];

/* The mount point (5th field) of a mountinfo line, octal escapes decoded; 0 or -1. */
static int mi_mountpoint(const char *line, char *out, size_t max)
{
	const char *p = line;
	for (int f = 0; f < 4; f++) {
		while (*p && *p != ' ')
			p++;
		if (!*p)
			return -1;
		p++;
	}
	size_t n = 0;
	while (*p && *p != ' ') {
		char c = *p++;
		if (c == '\\' && p[0] >= '0' && p[0] <= '3' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' &&
		    p[2] <= '7') {
			c = (char)(((p[0] - '0') << 6) | ((p[1] - '0') << 3) | (p[2] - '0'));
			p += 3;
		}
		if (n + 1 >= max)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return n ? 0 : -1;
}

/* Remount every mount at or under top read-only (the fallback of mount_setattr AT_RECURSIVE).
 * Mount points that are no longer reachable (covered by a later mount) are skipped. */
static int sb_remount_tree(const char *top, int rdonly)
{
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t ll = 0;
	int skip = 0, rc = 0;
	for (;;) {
		ssize_t k = read(fd, g_mi_buf, sizeof(g_mi_buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		for (ssize_t i = 0; i < k; i++) {
			char c = g_mi_buf[i];
			if (c != '\n') {
				if (ll + 1 < sizeof(g_mi_line))
					g_mi_line[ll++] = c;
				else
					skip = 1;
				continue;
			}
			g_mi_line[ll] = '\0';
			if (!skip && mi_mountpoint(g_mi_line, g_mi_path, sizeof(g_mi_path)) == 0 &&
			    sb_under(g_mi_path, top)) {
				int r = sb_remount(g_mi_path, rdonly);
				/* EINVAL: not a mount point any more (covered); ENOENT: gone */
				if (r < 0 && r != -EINVAL && r != -ENOENT && rc == 0)
					rc = r;
			}
			ll = 0;
			skip = 0;
		}
	}
	close(fd);
	return rc;
}

/* Bring `lo` up in the current network namespace: 0 or -errno. */
static int sb_lo_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	int rc = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		rc = -errno;
	} else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			rc = -errno;
	}
	close(s);
	return rc;
}

static int sb_mkdir(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int sb_mkfile(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	close(fd);
	return 0;
}

/* ---- the seccomp program: built once per process, kept for every plan */

/* EPERM for these (default allow). chroot, ptrace and clone/unshare without CLONE_NEWUSER stay
 * allowed; see docs/sandbox.md. Names unknown to libseccomp or the architecture are skipped. */
static const char *const g_deny[] = {
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
	"swapon", "swapoff",
	"mount", "umount", "umount2", "pivot_root", "mount_setattr", "move_mount", "open_tree",
	"fsopen", "fsconfig", "fsmount", "fspick",
	"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "acct",
	"settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime",
	"clock_adjtime64", "adjtimex",
	"quotactl", "quotactl_fd", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
	"userfaultfd", "setns", "iopl", "ioperm",
};

static pthread_once_t g_filter_once = PTHREAD_ONCE_INIT;
static struct sock_filter *g_filter;
static unsigned short g_filter_len;
static char g_filter_err[200];
static int g_filter_rules;

static void filter_build(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int fd = -1, rc;
	if (!ctx) {
		snprintf(g_filter_err, sizeof(g_filter_err), "seccomp_init failed");
		return;
	}
	/* another architecture's syscalls (a 32-bit binary on a 64-bit kernel) get the same rules
	 * where libseccomp knows the compat ABI; anything else is killed */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0)
		seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL);
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); /* we set no_new_privs ourselves */
	uint32_t native = seccomp_arch_native();
	if (native == SCMP_ARCH_X86_64) {
		seccomp_arch_add(ctx, SCMP_ARCH_X86);
		seccomp_arch_add(ctx, SCMP_ARCH_X32);
	} else if (native == SCMP_ARCH_AARCH64) {
		seccomp_arch_add(ctx, SCMP_ARCH_ARM);
	}
	for (size_t i = 0; i < RN_ARRAY_LEN(g_deny); i++) {
		int nr = seccomp_syscall_resolve_name(g_deny[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc == 0)
			g_filter_rules++;
		else if (rc != -EDOM && rc != -EOPNOTSUPP)
			goto fail_rc;
	}
	/* new user namespaces (the way to most of the kernel's attack surface); clone3 passes its
	 * flags in memory that seccomp cannot read, so it is ENOSYS and libc falls back to clone */
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
			      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
	if (rc < 0)
		goto fail_rc;
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
			      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
	if (rc < 0)
		goto fail_rc;
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc < 0 && rc != -EDOM)
		goto fail_rc;
	g_filter_rules += 3;

	fd = memfd_create("rn-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(g_filter_err, sizeof(g_filter_err), "memfd_create: %s", strerror(errno));
		goto out;
	}
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		goto fail_rc;
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
	    size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		snprintf(g_filter_err, sizeof(g_filter_err), "seccomp_export_bpf: bad program size %lld",
			 (long long)size);
		goto out;
	}
	struct sock_filter *f = rn_xmalloc((size_t)size);
	size_t got = 0;
	while (got < (size_t)size) {
		ssize_t k = pread(fd, (char *)f + got, (size_t)size - got, (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got != (size_t)size) {
		free(f);
		snprintf(g_filter_err, sizeof(g_filter_err), "reading the exported seccomp program failed");
		goto out;
	}
	g_filter = f;
	g_filter_len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
	goto out;
fail_rc:
	snprintf(g_filter_err, sizeof(g_filter_err), "libseccomp: %s", strerror(-rc));
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
}

/* The shared program, or NULL with *why. */
static const struct sock_filter *filter_get(unsigned short *len, const char **why)
{
	pthread_once(&g_filter_once, filter_build);
	*len = g_filter_len;
	*why = g_filter_err;
	return g_filter;
}

/* ---- probe */

/* What the probe child found: 0 ok, else errno; -1 not tried. */
struct probe_res {
	int32_t user, pid, mnt, ipc, uts, net;
	int32_t proc, tmpfs, setattr, remount, hostname, lo, nnp, seccomp;
};

static int32_t try_unshare(int flag)
{
	return unshare(flag) == 0 ? 0 : errno;
}

/* The probe child: in new namespaces of its own, try what the shim will do. Writes a struct
 * probe_res to fd and exits. Async-signal-safe (the runner may have threads). */
static _Noreturn void probe_child(int fd, int use_userns, const char *uid_map, size_t uid_len,
				  const char *gid_map, size_t gid_len)
{
	struct probe_res r;
	memset(&r, 0xff, sizeof(r)); /* -1: not tried */
	if (use_userns) {
		r.user = try_unshare(CLONE_NEWUSER);
		if (r.user == 0) {
			int e = sb_write_file("/proc/self/setgroups", "deny", 4);
			if (e == -ENOENT)
				e = 0;
			if (e == 0)
				e = sb_write_file("/proc/self/uid_map", uid_map, uid_len);
			if (e == 0)
				e = sb_write_file("/proc/self/gid_map", gid_map, gid_len);
			r.user = -e;
		}
		if (r.user != 0)
			goto done;
	}
	r.mnt = try_unshare(CLONE_NEWNS);
	r.ipc = try_unshare(CLONE_NEWIPC);
	r.uts = try_unshare(CLONE_NEWUTS);
	r.net = try_unshare(CLONE_NEWNET);
	r.pid = try_unshare(CLONE_NEWPID);
	if (r.mnt == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		r.mnt = errno;
	if (r.mnt == 0) {
		r.tmpfs = mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") == 0 ? 0 : errno;
		if (r.tmpfs == 0) {
			r.setattr = -sb_setattr("/tmp", 1, SB_MOUNT_ATTR_RDONLY, 0);
			if (r.setattr == 0)
				r.setattr = -sb_setattr("/tmp", 0, 0, SB_MOUNT_ATTR_RDONLY);
			r.remount = -sb_remount("/tmp", 1);
			if (r.remount == 0)
				r.remount = -sb_remount("/tmp", 0);
		}
		if (r.pid == 0) {
			pid_t g = fork(); /* PID 1 of the new namespace */
			if (g == 0) {
				int e = mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0
						? 0 : errno;
				_exit(e & 0xff);
			}
			int st = 0;
			if (g < 0)
				r.proc = errno;
			else if (waitpid(g, &st, 0) != g || !WIFEXITED(st))
				r.proc = EIO;
			else
				r.proc = WEXITSTATUS(st);
		}
	}
	if (r.uts == 0)
		r.hostname = sethostname("runner", 6) == 0 ? 0 : errno;
	if (r.net == 0)
		r.lo = -sb_lo_up();
	r.nnp = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : errno;
	{
		struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		struct sock_fprog fp = { 1, &allow };
		r.seccomp = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0) == 0 ? 0 : errno;
	}
done:;
	ssize_t k;
	do
		k = write(fd, &r, sizeof(r));
	while (k < 0 && errno == EINTR);
	_exit(0);
}

static int probe_run(struct probe_res *r, int use_userns, uid_t uid, gid_t gid)
{
	char um[48], gm[48];
	int ul = snprintf(um, sizeof(um), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	int gl = snprintf(gm, sizeof(gm), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0)
		return -errno;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = fork();
	if (pid == 0) {
		close(pp[0]);
		probe_child(pp[1], use_userns, um, (size_t)ul, gm, (size_t)gl);
	}
	int fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(pp[1]);
	if (pid < 0) {
		close(pp[0]);
		return -fork_errno;
	}
	size_t got = 0;
	while (got < sizeof(*r)) {
		ssize_t k = read(pp[0], (char *)r + got, sizeof(*r) - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(pp[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
	}
	return got == sizeof(*r) ? 0 : -EIO;
}

static void feat_set(rn_sandbox_feat *f, int32_t v)
{
	f->ok = v == 0;
	f->err = v > 0 ? v : 0;
}

/* ---- cgroup discovery (runner side) */

struct cg_mount {
	char mnt[RN_SANDBOX_DIR_MAX];
	char root[RN_SANDBOX_DIR_MAX];
	int found;
};

/* Decode a mountinfo field (octal escapes) into out. */
static void mi_field(const char *s, size_t n, char *out, size_t max)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < max; i++) {
		if (s[i] == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3') {
			out[o++] = (char)(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
			i += 3;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
}

/* 1 if the comma-separated list has the token. */
static int has_token(const char *list, size_t n, const char *tok)
{
	size_t tl = strlen(tok);
	const char *p = list, *end = list + n;
	while (p < end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		size_t l = c ? (size_t)(c - p) : (size_t)(end - p);
		if (l == tl && memcmp(p, tok, tl) == 0)
			return 1;
		if (!c)
			break;
		p = c + 1;
	}
	return 0;
}

/* Find the cgroup2 mount and the v1 mounts of memory, pids and cpuacct. */
static void cg_mounts(struct cg_mount *v2, struct cg_mount *mem, struct cg_mount *pids,
		      struct cg_mount *cpu)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		const char *fld[5];
		size_t len[5];
		const char *p = line;
		int i;
		for (i = 0; i < 5; i++) {
			fld[i] = p;
			while (*p && *p != ' ' && *p != '\n')
				p++;
			len[i] = (size_t)(p - fld[i]);
			if (*p != ' ')
				break;
			p++;
		}
		if (i < 4)
			continue;
		const char *sep = strstr(p, " - ");
		if (!sep)
			continue;
		const char *fs = sep + 3, *fse = strchr(fs, ' ');
		if (!fse)
			continue;
		const char *src = fse + 1, *srce = strchr(src, ' ');
		if (!srce)
			continue;
		const char *so = srce + 1;
		size_t sol = strcspn(so, " \n");
		size_t fsl = (size_t)(fse - fs);
		struct cg_mount *targets[3] = { NULL, NULL, NULL };
		if (fsl == 7 && memcmp(fs, "cgroup2", 7) == 0) {
			targets[0] = v2;
		} else if (fsl == 6 && memcmp(fs, "cgroup", 6) == 0) {
			if (has_token(so, sol, "memory"))
				targets[0] = mem;
			if (has_token(so, sol, "pids"))
				targets[1] = pids;
			if (has_token(so, sol, "cpuacct"))
				targets[2] = cpu;
		}
		for (int t = 0; t < 3; t++) {
			if (!targets[t] || targets[t]->found)
				continue;
			mi_field(fld[3], len[3], targets[t]->root, sizeof(targets[t]->root));
			mi_field(fld[4], len[4], targets[t]->mnt, sizeof(targets[t]->mnt));
			targets[t]->found = 1;
		}
	}
	free(line);
	fclose(f);
}

/* Our cgroup path in the hierarchy with this controller (v1), or the v2 one (ctrl NULL). */
static int cg_self_path(const char *ctrl, char *out, size_t max)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	int found = -1;
	while (found < 0 && getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		size_t cl = (size_t)(c2 - c1 - 1);
		int match = ctrl ? has_token(c1 + 1, cl, ctrl) : (cl == 0 && strncmp(line, "0:", 2) == 0);
		if (match) {
			snprintf(out, max, "%s", c2 + 1);
			found = 0;
		}
	}
	free(line);
	fclose(f);
	return found;
}

/* mnt + (path relative to the mount's root). */
static void cg_join(char *out, size_t max, const struct cg_mount *m, const char *path)
{
	const char *rel = path;
	size_t rl = strlen(m->root);
	if (strcmp(m->root, "/") != 0 && strncmp(path, m->root, rl) == 0 &&
	    (path[rl] == '/' || path[rl] == '\0'))
		rel = path + rl;
	if (strcmp(rel, "/") == 0)
		rel = "";
	snprintf(out, max, "%s%s", m->mnt, rel);
}

/* Can we create a child cgroup in dir that has the file `probe`? 0 or -errno. */
static int cg_try_mkdir(const char *dir, const char *probe)
{
	char t[RN_SANDBOX_DIR_MAX + 64], f[RN_SANDBOX_DIR_MAX + 128];
	snprintf(t, sizeof(t), "%s/runner-probe-%d", dir, (int)getpid());
	if (mkdir(t, 0755) < 0)
		return -errno;
	snprintf(f, sizeof(f), "%s/%s", t, probe);
	int rc = access(f, F_OK) == 0 ? 0 : -ENOENT;
	rmdir(t);
	return rc;
}

/* 1 if the v2 cgroup dir delegates the controller to its children. */
static int cg2_delegates(const char *dir, const char *ctrl)
{
	char path[RN_SANDBOX_DIR_MAX + 32], buf[256];
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return 0;
	buf[k] = '\0';
	for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n"))
		if (strcmp(tok, ctrl) == 0)
			return 1;
	return 0;
}

/* Where step cgroups for one controller go: cgroup v2 when the controller is delegated there,
 * else the v1 hierarchy of ctrl1, else (ctrl2 NULL: no controller needed) plain v2. */
static void cg_probe_one(rn_sandbox_cg *out, const char *v2dir, const struct cg_mount *v1,
			 const char *ctrl1, const char *ctrl2, const char *file1, const char *file2)
{
	const char *v2ctrl = ctrl2 ? ctrl2 : "cpu";
	int rc;
	out->ver = 0;
	out->dir[0] = '\0';
	snprintf(out->why, sizeof(out->why), "no cgroup v2 or v1 %s controller", ctrl1);
	if (v2dir[0] && cg2_delegates(v2dir, v2ctrl)) {
		rc = cg_try_mkdir(v2dir, file2);
		if (rc == 0) {
			out->ver = 2;
			snprintf(out->dir, sizeof(out->dir), "%s", v2dir);
			return;
		}
		snprintf(out->why, sizeof(out->why), "cgroup v2 %s: %s", v2dir, strerror(-rc));
	} else if (v2dir[0]) {
		snprintf(out->why, sizeof(out->why), "cgroup v2: '%s' is not delegated in %s", v2ctrl, v2dir);
	}
	if (v1->found) {
		char path[RN_SANDBOX_DIR_MAX], dir[RN_SANDBOX_DIR_MAX];
		if (cg_self_path(ctrl1, path, sizeof(path)) < 0) {
			snprintf(out->why, sizeof(out->why), "cgroup v1 %s: not in /proc/self/cgroup", ctrl1);
		} else {
			cg_join(dir, sizeof(dir), v1, path);
			rc = cg_try_mkdir(dir, file1);
			if (rc == 0) {
				out->ver = 1;
				snprintf(out->dir, sizeof(out->dir), "%s", dir);
				return;
			}
			snprintf(out->why, sizeof(out->why), "cgroup v1 %s: %s", dir, strerror(-rc));
		}
	}
	if (!ctrl2 && v2dir[0] && cg_try_mkdir(v2dir, file2) == 0) {
		out->ver = 2;
		snprintf(out->dir, sizeof(out->dir), "%s", v2dir);
	}
}

/* Remove step cgroups a crashed runner left behind: empty ones (rmdir fails otherwise) whose
 * runner is gone, created more than a minute ago (not one another runner is about to join). */
static void cg_clean_stale(const rn_sandbox_cg *c)
{
	if (!c->ver)
		return;
	DIR *d = opendir(c->dir);
	if (!d)
		return;
	struct dirent *e;
	time_t now = time(NULL);
	while ((e = readdir(d))) {
		int pid;
		unsigned n;
		char extra;
		if (sscanf(e->d_name, "runner-%d-%u%c", &pid, &n, &extra) != 2 || pid <= 0 || pid == getpid())
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		char path[RN_SANDBOX_DIR_MAX + 300];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", c->dir, e->d_name);
		if (stat(path, &st) == 0 && now - st.st_mtime > 60)
			rmdir(path);
	}
	closedir(d);
}

static void cg_probe(rn_sandbox_caps *c)
{
	struct cg_mount v2, mem, pids, cpu;
	memset(&v2, 0, sizeof(v2));
	memset(&mem, 0, sizeof(mem));
	memset(&pids, 0, sizeof(pids));
	memset(&cpu, 0, sizeof(cpu));
	cg_mounts(&v2, &mem, &pids, &cpu);
	char v2dir[RN_SANDBOX_DIR_MAX] = "";
	const char *env = getenv("RUNNER_CGROUP");
	if (env && env[0] == '/') {
		snprintf(v2dir, sizeof(v2dir), "%s", env);
	} else if (v2.found) {
		char path[RN_SANDBOX_DIR_MAX];
		if (cg_self_path(NULL, path, sizeof(path)) == 0)
			cg_join(v2dir, sizeof(v2dir), &v2, path);
	}
	cg_probe_one(&c->memory, v2dir, &mem, "memory", "memory", "memory.limit_in_bytes", "memory.max");
	cg_probe_one(&c->pids, v2dir, &pids, "pids", "pids", "pids.max", "pids.max");
	/* v2: cpu.stat exists in every cgroup, no controller needed for the usage */
	cg_probe_one(&c->cpu, v2dir, &cpu, "cpuacct", NULL, "cpuacct.usage", "cpu.stat");
	cg_clean_stale(&c->memory);
	cg_clean_stale(&c->pids);
	cg_clean_stale(&c->cpu);
}

int rn_sandbox_probe(rn_sandbox_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->uid = geteuid();
	caps->gid = getegid();
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(caps->kernel, sizeof(caps->kernel), "%s", u.release);
	const struct scmp_version *v = seccomp_version();
	if (v)
		snprintf(caps->libseccomp, sizeof(caps->libseccomp), "%u.%u.%u", v->major, v->minor, v->micro);

	struct probe_res r;
	memset(&r, 0, sizeof(r));
	int rc = -1;
	if (caps->uid == 0) {
		rc = probe_run(&r, 0, caps->uid, caps->gid);
		if (rc == 0 && r.mnt == 0)
			caps->root = 1;
	}
	if (!caps->root)
		rc = probe_run(&r, 1, caps->uid, caps->gid);
	if (rc == 0) {
		if (!caps->root)
			feat_set(&caps->user, r.user);
		feat_set(&caps->pid, r.pid);
		feat_set(&caps->mount, r.mnt);
		feat_set(&caps->ipc, r.ipc);
		feat_set(&caps->uts, r.uts);
		feat_set(&caps->net, r.net);
		feat_set(&caps->proc, r.proc);
		feat_set(&caps->tmpfs, r.tmpfs);
		feat_set(&caps->setattr, r.setattr);
		feat_set(&caps->remount, r.remount);
		feat_set(&caps->hostname, r.hostname);
		feat_set(&caps->lo, r.lo);
		feat_set(&caps->nnp, r.nnp);
		feat_set(&caps->seccomp, r.seccomp);
	}
	if (caps->seccomp.ok) {
		unsigned short len;
		const char *why;
		if (!filter_get(&len, &why)) {
			caps->seccomp.ok = 0;
			caps->seccomp.err = ENOSYS;
		}
	}
	int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	feat_set(&caps->pidfd, pfd >= 0 ? 0 : errno);
	if (pfd >= 0)
		close(pfd);
	cg_probe(caps);
	if (rc < 0) {
		rn_error_set("sandbox probe failed: %s", strerror(-rc));
		return RN_EIO;
	}
	return RN_OK;
}

/* ---- --sandbox-info */

static const char *feat_why(const rn_sandbox_feat *f)
{
	return f->err ? strerror(f->err) : "not tried";
}

void rn_sandbox_caps_print(FILE *out, const rn_sandbox_caps *c)
{
	int ns = c->root || c->user.ok;
	fprintf(out, "sandbox features (kernel %s, libseccomp %s, uid %u):\n", c->kernel[0] ? c->kernel : "?",
		c->libseccomp[0] ? c->libseccomp : "?", (unsigned)c->uid);
	if (c->root)
		fprintf(out, "  user namespace:   not needed (root with CAP_SYS_ADMIN)\n");
	else if (c->user.ok)
		fprintf(out, "  user namespace:   yes (uid %u and gid %u mapped to themselves)\n", (unsigned)c->uid,
			(unsigned)c->gid);
	else
		fprintf(out, "  user namespace:   no (%s): no namespaces at all\n", feat_why(&c->user));
#define NSLINE(label, f, how)                                                                    \
	do {                                                                                     \
		if (!ns)                                                                         \
			fprintf(out, "  %-17s no (needs a user namespace)\n", label);            \
		else if ((f)->ok)                                                                \
			fprintf(out, "  %-17s yes (%s)\n", label, how);                          \
		else                                                                             \
			fprintf(out, "  %-17s no (%s)\n", label, feat_why(f));                   \
	} while (0)
	if (ns && c->pid.ok && !(c->mount.ok && c->proc.ok))
		fprintf(out, "  %-17s no (a fresh /proc cannot be mounted: %s)\n", "pid namespace:",
			feat_why(c->mount.ok ? &c->proc : &c->mount));
	else
		NSLINE("pid namespace:", &c->pid, "clone CLONE_NEWPID, own PID 1, fresh /proc");
	NSLINE("mount namespace:", &c->mount, "clone CLONE_NEWNS, propagation private");
	if (ns && c->mount.ok)
		NSLINE("private /tmp:", &c->tmpfs, "tmpfs on /tmp and /dev/shm");
	else
		fprintf(out, "  %-17s no (needs a mount namespace)\n", "private /tmp:");
	NSLINE("ipc namespace:", &c->ipc, "clone CLONE_NEWIPC");
	NSLINE("uts namespace:", &c->uts, "clone CLONE_NEWUTS, hostname \"runner\"");
	if (ns && c->net.ok && !c->lo.ok)
		fprintf(out, "  %-17s yes (empty network namespace; lo cannot be brought up: %s)\n",
			"network: false", feat_why(&c->lo));
	else
		NSLINE("network: false", &c->net, "clone CLONE_NEWNET, only lo, up");
	if (!ns || !c->mount.ok)
		fprintf(out, "  %-17s no (needs a mount namespace)\n", "read-only-root:");
	else if (c->setattr.ok)
		fprintf(out, "  %-17s yes (mount_setattr AT_RECURSIVE MOUNT_ATTR_RDONLY)\n", "read-only-root:");
	else if (c->remount.ok)
		fprintf(out, "  %-17s yes (MS_REMOUNT|MS_BIND|MS_RDONLY per mount from /proc/self/mountinfo)\n",
			"read-only-root:");
	else
		fprintf(out, "  %-17s no (%s)\n", "read-only-root:", feat_why(&c->remount));
	fprintf(out, "  %-17s %s\n", "no_new_privs:", c->nnp.ok ? "yes (PR_SET_NO_NEW_PRIVS)" : "no");
	if (c->seccomp.ok) {
		fprintf(out, "  %-17s yes (libseccomp filter, %d rules, EPERM for mount, bpf, keyctl, ...)\n",
			"seccomp:", g_filter_rules);
	} else {
		fprintf(out, "  %-17s no (%s)\n", "seccomp:", g_filter_err[0] ? g_filter_err : feat_why(&c->seccomp));
	}
	if (c->memory.ver)
		fprintf(out, "  %-17s cgroup v%d (%s)\n", "memory limit:", c->memory.ver, c->memory.dir);
	else
		fprintf(out, "  %-17s rlimit RLIMIT_AS (approximate: address space, not memory use; %s)\n",
			"memory limit:", c->memory.why);
	if (c->pids.ver)
		fprintf(out, "  %-17s cgroup v%d (%s)\n", "pids limit:", c->pids.ver, c->pids.dir);
	else if (c->uid != 0)
		fprintf(out, "  %-17s rlimit RLIMIT_NPROC (%s; %s)\n", "pids limit:",
			ns ? "counts the step's processes in its user namespace" : "counts every process of the user",
			c->pids.why);
	else
		fprintf(out, "  %-17s no (%s; RLIMIT_NPROC does not apply to root)\n", "pids limit:", c->pids.why);
	if (c->cpu.ver)
		fprintf(out, "  %-17s rlimit RLIMIT_CPU (per process); tree total measured by cgroup v%d (%s)\n",
			"cpu limit:", c->cpu.ver, c->cpu.dir);
	else
		fprintf(out, "  %-17s rlimit RLIMIT_CPU (per process)\n", "cpu limit:");
	fprintf(out, "  %-17s rlimit RLIMIT_NOFILE (per process)\n", "files limit:");
	fprintf(out, "  %-17s rlimit RLIMIT_FSIZE (per process)\n", "file-size limit:");
#undef NSLINE
}

/* ---- plan (runner side) */

static void plan_notice(rn_sandbox_plan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void plan_notice(rn_sandbox_plan *p, const char *fmt, ...)
{
	va_list ap;
	char buf[512];
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rn_grow(&p->notices, &p->capnotices, p->nnotices + 1, sizeof(*p->notices));
	p->notices[p->nnotices++] = rn_xstrdup(buf);
}

static void plan_op(rn_sandbox_plan *p, int kind, const char *path, int slot, int flag)
{
	rn_grow(&p->ops, &p->capops, p->nops + 1, sizeof(*p->ops));
	struct sb_op *o = &p->ops[p->nops++];
	o->kind = kind;
	o->path = rn_xstrdup(path);
	o->slot = slot;
	o->flag = flag;
}

static void plan_rlimit(rn_sandbox_plan *p, int res, rlim_t soft, rlim_t hard)
{
	struct rlimit cur;
	if (getrlimit(res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
		if (hard == RLIM_INFINITY || hard > cur.rlim_max)
			hard = cur.rlim_max; /* cannot raise it: enforce what we can */
	}
	if (soft > hard)
		soft = hard;
	p->rl[p->nrl].res = res;
	p->rl[p->nrl].soft = soft;
	p->rl[p->nrl].hard = hard;
	p->nrl++;
}

/* Create a step cgroup under parent; index into p->cg (existing one if the parent is shared). */
static int plan_cgroup(rn_sandbox_plan *p, const rn_sandbox_cg *c, int what)
{
	for (size_t i = 0; i < p->ncg; i++) {
		size_t dl = strlen(c->dir);
		if (p->cg[i].ver == c->ver && strncmp(p->cg[i].dir, c->dir, dl) == 0 && p->cg[i].dir[dl] == '/') {
			p->cg[i].what |= what;
			return (int)i;
		}
	}
	static unsigned seq;
	unsigned n = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
	char *dir = rn_xasprintf("%s/runner-%d-%u", c->dir, (int)getpid(), n);
	if (mkdir(dir, 0755) < 0) {
		rn_error_errno("sandbox: cannot create cgroup %s", dir);
		free(dir);
		return -1;
	}
	struct sb_cgroup *g = &p->cg[p->ncg++];
	g->ver = c->ver;
	g->what = what;
	g->dir = dir;
	g->procs = rn_xasprintf("%s/cgroup.procs", dir);
	return (int)(p->ncg - 1);
}

static int cg_write(const struct sb_cgroup *g, const char *file, const char *val, int optional)
{
	char *path = rn_xasprintf("%s/%s", g->dir, file);
	int rc = sb_write_file(path, val, strlen(val));
	if (rc < 0 && !(optional && (rc == -ENOENT || rc == -EINVAL))) {
		errno = -rc;
		rn_error_errno("sandbox: cannot write '%s' to %s", val, path);
		free(path);
		return RN_EIO;
	}
	free(path);
	return RN_OK;
}

/* A path that must stay visible in the sandbox. */
struct keep {
	char *path;
	int rw, dir, slot, covered;
	const char *tmpfs; /* the tmpfs target it lives under, or NULL */
};

static int plan_keep(struct keep *k, size_t *n, const char *path, int rw, int required, const char *what)
{
	if (!path)
		return RN_OK;
	char *real = realpath(path, NULL);
	struct stat st;
	if (!real || stat(real, &st) < 0) {
		free(real);
		if (!required)
			return RN_OK;
		return rn_error_errno("sandbox: %s '%s'", what, path);
	}
	if (*n >= SB_MAX_SLOTS) {
		free(real);
		rn_error_set("sandbox: too many paths to keep visible (at most %d)", SB_MAX_SLOTS);
		return RN_ETOOBIG;
	}
	memset(&k[*n], 0, sizeof(k[*n]));
	k[*n].path = real;
	k[*n].rw = rw;
	k[*n].dir = S_ISDIR(st.st_mode);
	k[*n].slot = -1;
	(*n)++;
	return RN_OK;
}

static int is_mount_point(const char *path)
{
	struct stat a, b;
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s/..", path);
	return stat(path, &a) == 0 && stat(parent, &b) == 0 && (a.st_dev != b.st_dev || a.st_ino == b.st_ino);
}

/* The mount ops of the plan (see the top of the file). */
static int plan_mounts(rn_sandbox_plan *p, const rn_sandbox *s, const rn_sandbox_caps *caps,
		       const rn_sandbox_paths *paths)
{
	struct keep k[SB_MAX_SLOTS];
	size_t nk = 0;
	int rc = plan_keep(k, &nk, paths->workspace, 1, 1, "workspace");
	if (rc == 0 && nk && strcmp(k[0].path, "/") == 0) {
		rn_error_set("sandbox: the workspace cannot be /");
		rc = RN_EINVALID;
	}
	if (rc == 0)
		rc = plan_keep(k, &nk, paths->temp, 1, 1, "RUNNER_TEMP");
	for (const char *const *e = paths->extra; rc == 0 && e && *e; e++)
		rc = plan_keep(k, &nk, *e, 1, 1, "path");
	if (rc == 0)
		rc = plan_keep(k, &nk, paths->self_exe ? paths->self_exe : "/proc/self/exe", 0, 0, "runner binary");
	if (rc == 0) { /* what `runner __step` may dlopen (ext.h); kept only if it exists */
		char *ext = rn_ext_path(paths->self_exe);
		rc = plan_keep(k, &nk, ext, 0, 0, "runner-ext.so");
		free(ext);
	}
	if (rc == 0 && paths->visible)
		rc = plan_keep(k, &nk, paths->visible, 0, 0, "step plugin");
	if (rc < 0)
		goto out;

	/* tmpfs targets: /tmp (possibly a symlink elsewhere) and /dev/shm */
	char *tmpfs[2] = { NULL, NULL };
	size_t ntmpfs = 0;
	int ro_root = s->read_only_root == 1;
	if (caps->tmpfs.ok) {
		struct stat st;
		char *t = realpath("/tmp", NULL);
		if (t && stat(t, &st) == 0 && S_ISDIR(st.st_mode) && strcmp(t, "/") != 0)
			tmpfs[ntmpfs++] = t;
		else
			free(t);
		if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode))
			tmpfs[ntmpfs++] = rn_xstrdup("/dev/shm");
	} else {
		plan_notice(p, "sandbox: tmpfs cannot be mounted here (%s): no private /tmp", feat_why(&caps->tmpfs));
	}

	/* drop paths inside a writable one (they are visible through it) */
	for (size_t i = 0; i < nk; i++) {
		for (size_t j = 0; j < nk; j++) {
			if (i == j || !k[j].rw || !k[j].path || !k[i].path)
				continue;
			if (sb_under(k[i].path, k[j].path) && (strcmp(k[i].path, k[j].path) != 0 || j < i)) {
				free(k[i].path);
				k[i].path = NULL;
				break;
			}
		}
	}
	int nslots = 0;
	for (size_t i = 0; i < nk; i++) {
		if (!k[i].path)
			continue;
		for (size_t t = 0; t < ntmpfs; t++)
			if (sb_under(k[i].path, tmpfs[t]))
				k[i].tmpfs = tmpfs[t];
		if (k[i].tmpfs || (ro_root && k[i].rw)) {
			k[i].slot = nslots++;
			plan_op(p, OP_OPEN, k[i].path, k[i].slot, k[i].dir);
		}
	}
	if (p->pidns)
		plan_op(p, OP_PROC, "/proc", -1, 0);
	for (size_t t = 0; t < ntmpfs; t++)
		plan_op(p, OP_TMPFS, tmpfs[t], -1, 0);
	/* mount points in the new tmpfs */
	for (size_t i = 0; i < nk; i++) {
		if (!k[i].path || k[i].slot < 0 || !k[i].tmpfs)
			continue;
		size_t tl = strlen(k[i].tmpfs), pl = strlen(k[i].path);
		for (size_t c = tl + 1; c <= pl; c++) {
			if (c < pl && k[i].path[c] != '/')
				continue;
			char *pre = rn_xstrndup(k[i].path, c);
			plan_op(p, c < pl || k[i].dir ? OP_MKDIR : OP_MKFILE, pre, -1, 0);
			free(pre);
		}
	}
	for (size_t i = 0; i < nk; i++)
		if (k[i].path && k[i].slot >= 0)
			plan_op(p, OP_BIND, k[i].path, k[i].slot, 0);
	/* a root step (no user namespace) could write the host's sysctls, sysrq-trigger and cgroups
	 * (its way out of the limits): read-only /proc/sys & co and /sys for everyone */
	static const char *const protect[] = { "/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus" };
	if (!p->userns) {
		for (size_t i = 0; i < RN_ARRAY_LEN(protect); i++)
			if (access(protect[i], F_OK) == 0)
				plan_op(p, OP_BIND, protect[i], -1, 0);
		for (size_t i = 0; i < RN_ARRAY_LEN(protect); i++)
			if (access(protect[i], F_OK) == 0)
				plan_op(p, OP_RO, protect[i], -1, 1);
	}
	if (is_mount_point("/sys"))
		plan_op(p, OP_RO, "/sys", -1, 1);
	for (size_t i = 0; i < nk; i++) /* the runner binary bound from under /tmp: read-only */
		if (k[i].path && !k[i].rw && k[i].slot >= 0 && !ro_root)
			plan_op(p, OP_RO, k[i].path, -1, 0);
	if (ro_root) {
		plan_op(p, OP_RO, "/", -1, 1);
		for (size_t t = 0; t < ntmpfs; t++)
			plan_op(p, OP_RW, tmpfs[t], -1, 0);
		for (size_t i = 0; i < nk; i++)
			if (k[i].path && k[i].rw && k[i].slot >= 0)
				plan_op(p, OP_RW, k[i].path, -1, 0);
		if (is_mount_point("/proc"))
			plan_op(p, OP_RW, "/proc", -1, 0); /* /proc/self/...; /proc/sys stays as it was */
	}
	for (size_t t = 0; t < ntmpfs; t++)
		free(tmpfs[t]);
out:
	for (size_t i = 0; i < nk; i++)
		free(k[i].path);
	return rc;
}

static void cg_remove_all(rn_sandbox_plan *p);

int rn_sandbox_plan_new(rn_sandbox_plan **out, const rn_sandbox *s, const rn_sandbox_caps *caps,
		    const rn_sandbox_paths *paths)
{
	*out = NULL;
	if (!s || s->enabled == 0)
		return RN_OK;
	if (!caps || !paths || !paths->workspace) {
		rn_error_set("rn_sandbox_plan_new: caps and a workspace are required");
		return RN_EINVALID;
	}
	rn_sandbox_plan *p = rn_xcalloc(1, sizeof(*p));
	p->parent_pidfd = -1;
	int rc = RN_OK;

	/* namespaces */
	int ns = caps->root || caps->user.ok;
	if (!ns)
		plan_notice(p, "sandbox: user namespaces are not allowed here (%s): steps run without pid, "
			    "mount, ipc and uts namespaces and without a private /tmp", feat_why(&caps->user));
	p->userns = ns && !caps->root;
	p->mntns = ns && caps->mount.ok;
	p->pidns = p->mntns && caps->pid.ok && caps->proc.ok;
	p->ipcns = ns && caps->ipc.ok;
	p->utsns = ns && caps->uts.ok && caps->hostname.ok;
	if (ns) {
		if (!caps->mount.ok)
			plan_notice(p, "sandbox: mount namespaces are not allowed here (%s): no private /tmp",
				    feat_why(&caps->mount));
		if (!p->pidns)
			plan_notice(p, "sandbox: no pid namespace here (%s): steps can see the host's processes",
				    !caps->pid.ok ? feat_why(&caps->pid) : !caps->mount.ok ? "no mount namespace"
				    : feat_why(&caps->proc));
		if (!caps->ipc.ok)
			plan_notice(p, "sandbox: ipc namespaces are not allowed here (%s)", feat_why(&caps->ipc));
		if (!p->utsns)
			plan_notice(p, "sandbox: uts namespaces are not allowed here (%s): the hostname is the host's",
				    feat_why(caps->uts.ok ? &caps->hostname : &caps->uts));
	}
	if (s->network == 0) {
		if (!ns || !caps->net.ok) {
			rn_error_set("sandbox key 'network: false' cannot be enforced: network namespaces are "
					  "not allowed here (%s)", feat_why(ns ? &caps->net : &caps->user));
			rc = RN_EINVALID;
			goto fail;
		}
		p->netns = 1;
		if (!caps->lo.ok)
			plan_notice(p, "sandbox: 'lo' cannot be brought up in a network namespace (%s): "
				    "network: false steps have no loopback", feat_why(&caps->lo));
	}
	if (s->read_only_root == 1) {
		if (!p->mntns) {
			rn_error_set("sandbox key 'read-only-root: true' cannot be enforced: mount namespaces "
					  "are not allowed here (%s)", feat_why(ns ? &caps->mount : &caps->user));
			rc = RN_EINVALID;
			goto fail;
		}
		if (!caps->setattr.ok && !caps->remount.ok) {
			rn_error_set("sandbox key 'read-only-root: true' cannot be enforced: read-only "
					  "remounts are not allowed here (%s)", feat_why(&caps->remount));
			rc = RN_EINVALID;
			goto fail;
		}
	}
	p->use_setattr = caps->setattr.ok;
	p->clone_flags = SIGCHLD;
	if (p->userns)
		p->clone_flags |= CLONE_NEWUSER;
	if (p->mntns)
		p->clone_flags |= CLONE_NEWNS;
	if (p->pidns)
		p->clone_flags |= CLONE_NEWPID;
	if (p->ipcns)
		p->clone_flags |= CLONE_NEWIPC;
	if (p->utsns)
		p->clone_flags |= CLONE_NEWUTS;
	if (p->netns)
		p->clone_flags |= CLONE_NEWNET;
	if (p->userns) {
		p->uid_map_len = (size_t)snprintf(p->uid_map, sizeof(p->uid_map), "%u %u 1\n",
						  (unsigned)caps->uid, (unsigned)caps->uid);
		p->gid_map_len = (size_t)snprintf(p->gid_map, sizeof(p->gid_map), "%u %u 1\n",
						  (unsigned)caps->gid, (unsigned)caps->gid);
	}
	const char *hn = paths->hostname ? paths->hostname : "runner";
	p->hostname_len = strlen(hn) < sizeof(p->hostname) - 1 ? strlen(hn) : sizeof(p->hostname) - 1;
	memcpy(p->hostname, hn, p->hostname_len);

	/* the mount plan and the cwd to re-resolve */
	if (p->mntns && (rc = plan_mounts(p, s, caps, paths)) < 0)
		goto fail;
	if (p->mntns) {
		char *cwd = paths->cwd ? realpath(paths->cwd, NULL) : getcwd(NULL, 0);
		p->cwd = cwd ? cwd : rn_xstrdup("/");
	}

	/* limits: cgroups where we have them, else rlimits */
	if (s->memory > 0) {
		if (caps->memory.ver) {
			int i = plan_cgroup(p, &caps->memory, CG_MEM);
			if (i < 0) {
				rc = RN_EIO;
				goto fail;
			}
			char v[32];
			snprintf(v, sizeof(v), "%lld", (long long)s->memory);
			if (caps->memory.ver == 1) {
				rc = cg_write(&p->cg[i], "memory.limit_in_bytes", v, 0);
				if (rc == 0) /* no swapping past the limit */
					rc = cg_write(&p->cg[i], "memory.memsw.limit_in_bytes", v, 1);
			} else {
				rc = cg_write(&p->cg[i], "memory.max", v, 0);
				if (rc == 0)
					rc = cg_write(&p->cg[i], "memory.swap.max", "0", 1);
			}
			if (rc < 0)
				goto fail;
			/* the shim must not be the OOM victim: the command gets the runner's value back */
			if (geteuid() == 0 && !p->userns) {
				char buf[16];
				int fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
				ssize_t k = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
				if (fd >= 0)
					close(fd);
				if (k > 0) {
					while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == ' '))
						k--;
					memcpy(p->oom_restore, buf, (size_t)k);
					p->oom_restore_len = (size_t)k;
					p->shim_oom_adj = 1;
				}
			}
		} else {
			plan_notice(p, "sandbox: memory limit enforced with RLIMIT_AS (address space, approximate): %s",
				    caps->memory.why);
			plan_rlimit(p, RLIMIT_AS, (rlim_t)s->memory, (rlim_t)s->memory);
		}
	}
	if (s->pids > 0) {
		char v[32];
		/* +1: the shim is in the cgroup (and the user namespace) too */
		snprintf(v, sizeof(v), "%lld", (long long)s->pids + 1);
		if (caps->pids.ver) {
			int i = plan_cgroup(p, &caps->pids, CG_PIDS);
			if (i < 0) {
				rc = RN_EIO;
				goto fail;
			}
			if ((rc = cg_write(&p->cg[i], "pids.max", v, 0)) < 0)
				goto fail;
		} else if (caps->uid != 0) {
			plan_notice(p, "sandbox: pids limit enforced with RLIMIT_NPROC (%s): %s",
				    p->userns ? "the step's processes in its user namespace" : "every process of the user",
				    caps->pids.why);
			plan_rlimit(p, RLIMIT_NPROC, (rlim_t)s->pids + 1, (rlim_t)s->pids + 1);
		} else {
			rn_error_set("sandbox key 'pids' cannot be enforced: %s, and RLIMIT_NPROC does not apply "
					  "to root", caps->pids.why);
			rc = RN_EINVALID;
			goto fail;
		}
	}
	if (s->cpu_s > 0) {
		p->cpu_limit_s = s->cpu_s;
		/* SIGXCPU at the limit, SIGKILL a second later if it is caught */
		plan_rlimit(p, RLIMIT_CPU, (rlim_t)s->cpu_s, (rlim_t)s->cpu_s + 1);
		if (caps->cpu.ver && plan_cgroup(p, &caps->cpu, CG_CPU) < 0) {
			rc = RN_EIO;
			goto fail;
		}
	}
	if (s->files > 0)
		plan_rlimit(p, RLIMIT_NOFILE, (rlim_t)s->files, (rlim_t)s->files);
	if (s->file_size >= 0)
		plan_rlimit(p, RLIMIT_FSIZE, (rlim_t)s->file_size, (rlim_t)s->file_size);

	/* no_new_privs and seccomp */
	p->nnp = caps->nnp.ok;
	if (!p->nnp)
		plan_notice(p, "sandbox: PR_SET_NO_NEW_PRIVS is not available here (%s)", feat_why(&caps->nnp));
	if (caps->seccomp.ok && p->nnp) {
		unsigned short len;
		const char *why;
		const struct sock_filter *f = filter_get(&len, &why);
		if (f) {
			p->seccomp = 1;
			p->fprog.len = len;
			p->fprog.filter = (struct sock_filter *)(uintptr_t)f;
		} else {
			plan_notice(p, "sandbox: no seccomp filter (%s)", why);
		}
	} else {
		plan_notice(p, "sandbox: no seccomp filter (%s)", feat_why(&caps->seccomp));
	}
	if (p->pidns && caps->pidfd.ok)
		p->parent_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	*out = p;
	return RN_OK;
fail:
	rn_sandbox_plan_free(p);
	return rc < 0 ? rc : RN_ERROR;
}

size_t rn_sandbox_plan_notice_count(const rn_sandbox_plan *p)
{
	return p ? p->nnotices : 0;
}

const char *rn_sandbox_plan_notice(const rn_sandbox_plan *p, size_t i)
{
	return p && i < p->nnotices ? p->notices[i] : NULL;
}

unsigned long rn_sandbox_clone_flags(const rn_sandbox_plan *p)
{
	return p ? p->clone_flags : SIGCHLD;
}

pid_t rn_sandbox_fork(const rn_sandbox_plan *p)
{
	unsigned long f = rn_sandbox_clone_flags(p);
	if (f == SIGCHLD)
		return fork();
	return (pid_t)syscall(SYS_clone, f, 0, 0, 0, 0);
}

/* ---- the shim */

static int run_op(const rn_sandbox_plan *p, const struct sb_op *o, int *fds)
{
	char src[40];
	switch (o->kind) {
	case OP_OPEN:
		fds[o->slot] = open(o->path, O_PATH | O_CLOEXEC | (o->flag ? O_DIRECTORY : 0));
		return fds[o->slot] < 0 ? -errno : 0;
	case OP_PROC:
		return mount("proc", o->path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ? -errno : 0;
	case OP_TMPFS:
		return mount("tmpfs", o->path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0 ? -errno : 0;
	case OP_MKDIR:
		return sb_mkdir(o->path);
	case OP_MKFILE:
		return sb_mkfile(o->path);
	case OP_BIND:
		if (o->slot >= 0) {
			char *e = sb_put_str(src, "/proc/self/fd/");
			e = sb_put_num(e, fds[o->slot]);
			*e = '\0';
		}
		return mount(o->slot >= 0 ? src : o->path, o->path, NULL, MS_BIND | MS_REC, NULL) < 0 ? -errno : 0;
	case OP_RO:
		if (p->use_setattr)
			return sb_setattr(o->path, o->flag, SB_MOUNT_ATTR_RDONLY, 0);
		return o->flag ? sb_remount_tree(o->path, 1) : sb_remount(o->path, 1);
	case OP_RW:
		if (p->use_setattr)
			return sb_setattr(o->path, 0, 0, SB_MOUNT_ATTR_RDONLY);
		return sb_remount(o->path, 0);
	}
	return -EINVAL;
}

int rn_sandbox_setup(const rn_sandbox_plan *p, int *stage)
{
	int st = 0, rc = 0;
	int fds[SB_MAX_SLOTS];
	for (int i = 0; i < SB_MAX_SLOTS; i++)
		fds[i] = -1;
	if (!p)
		goto out;
#define FAIL(s, e)                 \
	do {                       \
		st = (s);          \
		rc = (e);          \
		goto out;          \
	} while (0)
	/* if the runner dies from now on, so do we (and, as PID 1, the whole namespace) */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		FAIL(ST_PDEATHSIG, -errno);
	if (p->parent_pidfd >= 0) {
		struct pollfd pf = { .fd = p->parent_pidfd, .events = POLLIN };
		int n = poll(&pf, 1, 0);
		close(p->parent_pidfd);
		if (n > 0)
			FAIL(ST_PARENT, -ESRCH);
	}
	/* cgroups first: their files are under /sys, which turns read-only below */
	for (size_t i = 0; i < p->ncg; i++) {
		int e = sb_write_file(p->cg[i].procs, "0", 1);
		if (e < 0)
			FAIL(ST_CGROUP + (int)i, e);
	}
	if (p->shim_oom_adj)
		sb_write_file("/proc/self/oom_score_adj", "-1000", 5); /* best effort */
	if (p->userns) {
		int e = sb_write_file("/proc/self/setgroups", "deny", 4);
		if (e == 0 || e == -ENOENT)
			e = sb_write_file("/proc/self/uid_map", p->uid_map, p->uid_map_len);
		if (e == 0)
			e = sb_write_file("/proc/self/gid_map", p->gid_map, p->gid_map_len);
		if (e < 0)
			FAIL(ST_UIDMAP, e);
	}
	if (p->mntns) {
		/* nothing we mount may propagate back to the host */
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			FAIL(ST_PRIVATE, -errno);
		for (size_t i = 0; i < p->nops; i++) {
			int e = run_op(p, &p->ops[i], fds);
			if (e < 0)
				FAIL(ST_OP + (int)i, e);
		}
	}
	for (int i = 0; i < SB_MAX_SLOTS; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
	if (p->utsns && sethostname(p->hostname, p->hostname_len) < 0)
		FAIL(ST_HOSTNAME, -errno);
	if (p->netns) {
		int e = sb_lo_up();
		if (e < 0)
			FAIL(ST_LO, e);
	}
	/* the old cwd may be a directory now hidden under /tmp: resolve it again */
	if (p->cwd && chdir(p->cwd) < 0 && chdir("/") < 0)
		FAIL(ST_CHDIR, -errno);
	/* the shim is filtered too: a step that can ptrace it gains nothing */
	if (p->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		FAIL(ST_NNP, -errno);
	if (p->seccomp && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p->fprog, 0, 0) < 0)
		FAIL(ST_SECCOMP, -errno);
out:
	for (int i = 0; i < SB_MAX_SLOTS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (stage)
		*stage = st;
	return rc;
}

SB_CHILD int rn_sandbox_exec_prepare(const rn_sandbox_plan *p, int *stage)
{
	int st = 0, rc = 0;
	if (!p)
		goto out;
	if (p->shim_oom_adj) {
		int e = sb_write_file("/proc/self/oom_score_adj", p->oom_restore, p->oom_restore_len);
		if (e < 0)
			FAIL(ST_OOMADJ, e);
	}
	for (size_t i = 0; i < p->nrl; i++) {
		struct rlimit r = { p->rl[i].soft, p->rl[i].hard };
		if (setrlimit(p->rl[i].res, &r) < 0)
			FAIL(ST_RLIMIT + (int)i, -errno);
	}
	if (p->nnp && prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 &&
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		FAIL(ST_NNP, -errno);
	/* last: after it, only what the step itself may do (the shim usually installed it already) */
	if (p->seccomp && prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != SECCOMP_MODE_FILTER &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p->fprog, 0, 0) < 0)
		FAIL(ST_SECCOMP, -errno);
#undef FAIL
out:
	if (stage)
		*stage = st;
	return rc;
}

static const char *rlimit_name(int res)
{
	switch (res) {
	case RLIMIT_AS: return "RLIMIT_AS";
	case RLIMIT_NPROC: return "RLIMIT_NPROC";
	case RLIMIT_CPU: return "RLIMIT_CPU";
	case RLIMIT_NOFILE: return "RLIMIT_NOFILE";
	case RLIMIT_FSIZE: return "RLIMIT_FSIZE";
	}
	return "rlimit";
}

void rn_sandbox_describe(const rn_sandbox_plan *p, int stage, int err, char *buf, size_t size)
{
	char what[PATH_MAX + 64];
	if (err < 0)
		err = -err;
	static const char *const names[] = { "", "PR_SET_PDEATHSIG", "the runner exited before the step started",
		"writing the uid/gid maps", "making mounts private", "sethostname", "bringing up lo",
		"re-entering the working directory", "PR_SET_NO_NEW_PRIVS", "installing the seccomp filter",
		"restoring oom_score_adj" };
	static const char *const ops[] = { "", "opening", "mounting /proc on", "mounting tmpfs on",
		"creating the mount point", "creating the mount point", "bind mount of", "read-only remount of",
		"making writable" };
	if (p && stage >= ST_OP && (size_t)(stage - ST_OP) < p->nops) {
		const struct sb_op *o = &p->ops[stage - ST_OP];
		snprintf(what, sizeof(what), "%s %s", ops[o->kind], o->path);
	} else if (p && stage >= ST_RLIMIT && (size_t)(stage - ST_RLIMIT) < p->nrl) {
		snprintf(what, sizeof(what), "setrlimit %s", rlimit_name(p->rl[stage - ST_RLIMIT].res));
	} else if (p && stage >= ST_CGROUP && (size_t)(stage - ST_CGROUP) < p->ncg) {
		snprintf(what, sizeof(what), "joining cgroup %s", p->cg[stage - ST_CGROUP].dir);
	} else if (stage > 0 && (size_t)stage < RN_ARRAY_LEN(names)) {
		snprintf(what, sizeof(what), "%s", names[stage]);
	} else {
		snprintf(what, sizeof(what), "stage %d", stage);
	}
	snprintf(buf, size, "sandbox setup failed: %s: %s", what, strerror(err ? err : EIO));
}

/* ---- after the step (runner side) */

/* The number after `key ` in a small "key value" file; -1 if absent. */
static long long read_key(const char *dir, const char *file, const char *key)
{
	char path[RN_SANDBOX_DIR_MAX + 128], buf[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return -1;
	buf[k] = '\0';
	size_t kl = key ? strlen(key) : 0;
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!key)
			return strtoll(line, NULL, 10);
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
			return strtoll(line + kl + 1, NULL, 10);
		line = nl ? nl + 1 : NULL;
	}
	return -1;
}

/* rmdir a step cgroup; anything still in it is killed first. 0 or -errno. */
static int cg_remove(struct sb_cgroup *g)
{
	if (g->removed || !g->dir)
		return 0;
	for (int tries = 0; tries < 200; tries++) {
		if (rmdir(g->dir) == 0 || errno == ENOENT) {
			g->removed = 1;
			return 0;
		}
		if (errno != EBUSY)
			return -errno;
		int fd = open(g->procs, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			char buf[4096];
			ssize_t k = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (k > 0) {
				buf[k] = '\0';
				for (char *q = buf; *q;) {
					long pid = strtol(q, &q, 10);
					if (pid > 1)
						kill((pid_t)pid, SIGKILL);
					while (*q == '\n')
						q++;
					if (pid <= 0)
						break;
				}
			}
		}
		struct timespec ts = { 0, 5 * 1000000 };
		nanosleep(&ts, NULL);
	}
	return -EBUSY;
}

static void cg_remove_all(rn_sandbox_plan *p)
{
	for (size_t i = 0; i < p->ncg; i++)
		cg_remove(&p->cg[i]);
}

static int cpu_used(const rn_sandbox_plan *p, double *secs)
{
	for (size_t i = 0; i < p->ncg; i++) {
		const struct sb_cgroup *g = &p->cg[i];
		if (!(g->what & CG_CPU) || g->removed)
			continue;
		long long v = g->ver == 1 ? read_key(g->dir, "cpuacct.usage", NULL)
					  : read_key(g->dir, "cpu.stat", "usage_usec");
		if (v < 0)
			return RN_ENOTFOUND;
		*secs = g->ver == 1 ? (double)v / 1e9 : (double)v / 1e6;
		return RN_OK;
	}
	return RN_ENOTFOUND;
}

int rn_sandbox_cpu_used(const rn_sandbox_plan *p, double *secs)
{
	if (!p)
		return RN_ENOTFOUND;
	return cpu_used(p, secs);
}

int rn_sandbox_collect(rn_sandbox_plan *p, rn_sandbox_result *r)
{
	rn_sandbox_result dummy;
	if (!r)
		r = &dummy;
	memset(r, 0, sizeof(*r));
	r->cpu_s = -1;
	r->memory_peak = -1;
	if (!p || p->collected)
		return RN_OK;
	for (size_t i = 0; i < p->ncg; i++) {
		const struct sb_cgroup *g = &p->cg[i];
		if (g->what & CG_MEM) {
			long long oom = g->ver == 1 ? read_key(g->dir, "memory.oom_control", "oom_kill")
						    : read_key(g->dir, "memory.events", "oom_kill");
			if (oom < 0 && g->ver == 1) /* kernels before 4.13: the limit was hit at least */
				oom = read_key(g->dir, "memory.oom_control", "under_oom");
			r->oom = oom > 0;
			r->memory_peak = g->ver == 1 ? read_key(g->dir, "memory.max_usage_in_bytes", NULL)
						     : read_key(g->dir, "memory.peak", NULL);
		}
		if (g->what & CG_PIDS)
			r->pids_hit = read_key(g->dir, "pids.events", "max") > 0;
	}
	double secs;
	if (cpu_used(p, &secs) == 0) {
		r->cpu_s = secs;
		r->cpu_exceeded = p->cpu_limit_s > 0 && secs > (double)p->cpu_limit_s;
	}
	int rc = RN_OK;
	for (size_t i = 0; i < p->ncg; i++) {
		int e = cg_remove(&p->cg[i]);
		if (e < 0 && rc == 0) {
			errno = -e;
			rc = rn_error_errno("sandbox: cannot remove cgroup %s", p->cg[i].dir);
		}
	}
	p->collected = 1;
	return rc;
}

void rn_sandbox_plan_free(rn_sandbox_plan *p)
{
	if (!p)
		return;
	cg_remove_all(p);
	for (size_t i = 0; i < p->ncg; i++) {
		free(p->cg[i].dir);
		free(p->cg[i].procs);
	}
	for (size_t i = 0; i < p->nops; i++)
		free(p->ops[i].path);
	free(p->ops);
	for (size_t i = 0; i < p->nnotices; i++)
		free(p->notices[i]);
	free(p->notices);
	free(p->cwd);
	if (p->parent_pidfd >= 0)
		close(p->parent_pidfd);
	free(p);
}
