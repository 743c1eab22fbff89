/* agent_sup.c - supervision of one leased job by the agent (see agent_sup.h): two threads per
 * job, a `runner __job DIR` child in its own process group, and the lease calls of
 * docs/protocol.md (heartbeat, log, steps, artifacts, finish). */
#include "agent_sup.h"
#include "error.h"
#include "event.h"
#include "mask.h"
#include "step.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_CHUNK_MAX (1024 * 1024)  /* protocol: a log append is at most 1 MiB */
#define LOG_CHUNK_MIN 4096
#define IO_TICK_MS 100               /* at most one round of log/steps shipping per tick */
#define EVENT_LINE_MAX (1024 * 1024) /* longer lines of events.jsonl are skipped */
#define EVENT_READ 65536
#define GONE_KILL_MS 3000            /* after a 410: SIGTERM to the group, SIGKILL this much later */
#define RETRY_BASE_MS 250
#define RETRY_CAP_MS 30000
#define ERR_COPY_MAX 8192            /* bytes of job.err copied into the log when the child failed */
#define THREAD_STACK (512 * 1024)
#define ARTIFACT_MAX_DEFAULT ((uint64_t)8 << 30)

/* ---- counters ---------------------------------------------------------------------------- */

static struct {
	atomic_ullong started, success, failure, cancelled, timed_out, lost;
	atomic_ullong log_bytes, up, down, hb_errors, http_errors;
	atomic_int active;
} stats;

void rn_ajob_stats_get(rn_ajob_stats *o)
{
	o->started = stats.started;
	o->success = stats.success;
	o->failure = stats.failure;
	o->cancelled = stats.cancelled;
	o->timed_out = stats.timed_out;
	o->lost = stats.lost;
	o->log_bytes = stats.log_bytes;
	o->artifact_bytes_up = stats.up;
	o->artifact_bytes_down = stats.down;
	o->heartbeat_errors = stats.hb_errors;
	o->http_errors = stats.http_errors;
	o->active = stats.active;
}

/* ---- the job ------------------------------------------------------------------------------ */

struct rn_ajob {
	rn_api api;
	char *lease, *dir, *id, *name, *log_path, *events_path;
	char *base_path; /* "/api/v1/leases/LEASE" */
	json_t *artifacts; /* ARTIFACTs of the spec (a copy) */
	char *const *envp;
	char *self_exe;
	int keep, main_wake;
	rn_masker *masker; /* the job's secrets, for what the agent writes into the log */
	atomic_long ttl_ms;

	pthread_t sup, hb;
	int hb_started;
	int sup_efd, hb_efd; /* eventfds waking the supervisor / the heartbeat's sleeps */

	pthread_mutex_t mu; /* guards pid, pidfd and reaped against the signalling threads */
	pid_t pid;
	int pidfd;
	int reaped;

	atomic_int cancel, gone, terminate, abandon, hb_stop, finished;
	atomic_int finishing; /* the finish call is out: a 410 of the heartbeat is its echo */
	atomic_int child_done; /* the job's processes are gone (only reporting is left) */
	char status[16];

	/* supervisor state */
	int log_fd;
	uint64_t log_off;      /* bytes the server has */
	size_t chunk;          /* current log chunk size (halved on 413) */
	int log_broken;        /* the server refused the log for good: stop shipping */
	uint64_t ev_off;       /* bytes of events.jsonl consumed */
	char *ev_line;         /* the unfinished line */
	size_t ev_len;
	int ev_skip;           /* inside a line longer than EVENT_LINE_MAX */
	json_t *steps;         /* index (string) -> STEP */
	json_t *dirty;         /* index (string) -> true: steps not sent yet */
	json_t *prefilled;     /* artifact name -> sha256 downloaded before the job ran */
	int io_failures;       /* consecutive transient failures of log/steps calls */
	int64_t io_next;       /* monotonic ms before which no shipping is tried */
};

__attribute__((format(printf, 2, 3))) static void say(const rn_ajob *j, const char *fmt, ...)
{
	char ts[40], *msg = NULL;
	rn_time_iso8601(ts, sizeof(ts), rn_wall_ms(), 1);
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	fprintf(stderr, "%s runner agent: job %s (%s): %s\n", ts, j->id, j->name, msg ? msg : fmt);
	free(msg);
}

int rn_ajob_lease_ok(const char *lease)
{
	size_t n = 0;
	if (!lease)
		return 0;
	for (const char *p = lease; *p; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-'))
			return 0;
	return n >= 1 && n <= 128;
}

const char *rn_ajob_lease(const rn_ajob *j)
{
	return j->lease;
}

const char *rn_ajob_id(const rn_ajob *j)
{
	return j->id;
}

const char *rn_ajob_name(const rn_ajob *j)
{
	return j->name;
}

const char *rn_ajob_status(const rn_ajob *j)
{
	return atomic_load(&j->finished) ? j->status : "";
}

int rn_ajob_finished(const rn_ajob *j)
{
	return atomic_load(&j->finished);
}

int rn_ajob_busy(const rn_ajob *j)
{
	return !atomic_load(&j->child_done) && !atomic_load(&j->finished);
}

static void poke(int fd)
{
	uint64_t one = 1;
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* the counter is full: the reader is awake anyway */
	}
}

static void drain(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
}

static int pidfd_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* Signal the child (group: its whole process group) unless it was reaped. */
static void signal_child(rn_ajob *j, int sig, int group)
{
	pthread_mutex_lock(&j->mu);
	if (j->pid > 0 && !j->reaped) {
		if (group)
			kill(-j->pid, sig);
		else if (j->pidfd >= 0)
			pidfd_signal(j->pidfd, sig);
		else
			kill(j->pid, sig);
	}
	pthread_mutex_unlock(&j->mu);
}

/* The server cancelled the job: SIGTERM to `runner __job`, which stops the steps as on timeout. */
static void on_cancel(rn_ajob *j)
{
	if (atomic_exchange(&j->cancel, 1))
		return;
	say(j, "cancelled by the server");
	signal_child(j, SIGTERM, 0);
	poke(j->sup_efd);
}

/* The lease is gone (410): stop the job's processes, report nothing. */
static void on_gone(rn_ajob *j)
{
	if (atomic_exchange(&j->gone, 1))
		return;
	say(j, "the server refused the lease (gone): stopping the job and dropping it");
	signal_child(j, SIGTERM, 1);
	poke(j->sup_efd);
	poke(j->hb_efd);
}

void rn_ajob_terminate(rn_ajob *j)
{
	if (atomic_exchange(&j->terminate, 1))
		return;
	signal_child(j, SIGTERM, 0);
	poke(j->sup_efd);
}

void rn_ajob_abandon(rn_ajob *j)
{
	if (atomic_exchange(&j->abandon, 1))
		return;
	signal_child(j, SIGTERM, 1);
	poke(j->sup_efd);
	poke(j->hb_efd);
}

/* The cancel callback of HTTP calls: give up when the lease is gone or the agent gives up. */
static int call_cancelled(void *arg)
{
	rn_ajob *j = arg;
	return atomic_load(&j->gone) || atomic_load(&j->abandon);
}

static int hb_call_cancelled(void *arg)
{
	rn_ajob *j = arg;
	return call_cancelled(j) || atomic_load(&j->hb_stop);
}

/* The finish call is only given up when the agent gives up. */
static int finish_cancelled(void *arg)
{
	rn_ajob *j = arg;
	return atomic_load(&j->abandon);
}

/* Sleep ms, woken early by a poke of fd. */
static void nap(int fd, long ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms) > 0)
		drain(fd);
}

/* One call on the lease: "/api/v1/leases/LEASE" + suffix. A 410 marks the lease gone. */
static int lease_call(rn_ajob *j, const char *method, const char *suffix, rn_api_call *c, rn_api_res *res)
{
	char *path = rn_xasprintf("%s%s", j->base_path, suffix);
	c->method = method;
	c->path = path;
	if (!c->cancel) {
		c->cancel = call_cancelled;
		c->cb_arg = j;
	}
	int rc = rn_api_do(&j->api, c, res);
	free(path);
	if (res->status == 410 && !(c->cancel == hb_call_cancelled && atomic_load(&j->finishing)))
		on_gone(j);
	else if (rc < 0 && !res->cancelled && RN_API_TRANSIENT(res->status))
		atomic_fetch_add(&stats.http_errors, 1);
	return rc;
}

/* A line from the agent itself into the job log (masked), e.g. about artifacts. */
__attribute__((format(printf, 2, 3))) static void log_note(rn_ajob *j, const char *fmt, ...)
{
	char *text = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	if (!text)
		return;
	char *masked = rn_mask_str(j->masker, text);
	char *line = rn_xasprintf("runner: %s\n", masked);
	int fd = open(j->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		rn_write_all(fd, line, strlen(line));
		close(fd);
	}
	free(line);
	free(masked);
	free(text);
}

/* ---- heartbeats ---------------------------------------------------------------------------- */

static void *hb_main(void *arg)
{
	rn_ajob *j = arg;
	int failures = 0;
	while (!atomic_load(&j->hb_stop) && !atomic_load(&j->gone) && !atomic_load(&j->abandon)) {
		long ttl = atomic_load(&j->ttl_ms);
		/* long-poll well under ttl/2 (protocol), none once cancelled (the answer would come at once) */
		long wait_s = ttl / 2000 - 1;
		if (wait_s > 30)
			wait_s = 30;
		if (wait_s < 0 || atomic_load(&j->cancel))
			wait_s = 0;
		long interval = ttl / 3 < 10000 ? ttl / 3 : 10000;
		if (interval < 100)
			interval = 100;
		char suffix[64];
		snprintf(suffix, sizeof(suffix), "/heartbeat?wait=%ld", wait_s);
		rn_api_call c = { .json = NULL, .body = "{}", .body_len = 2, .content_type = "application/json",
				  .timeout_ms = (wait_s + 10) * 1000, .cancel = hb_call_cancelled, .cb_arg = j };
		rn_api_res res;
		int64_t t0 = rn_now_ms();
		int rc = lease_call(j, "POST", suffix, &c, &res);
		int64_t took = rn_now_ms() - t0;
		if (rc == 0) {
			failures = 0;
			json_int_t t = json_integer_value(json_object_get(res.answer, "lease_ttl_ms"));
			if (t >= 1000)
				atomic_store(&j->ttl_ms, (long)t);
			if (json_is_true(json_object_get(res.answer, "cancel")))
				on_cancel(j);
			/* a held answer was the wait; an early one (no long-poll, or cancelled) is not */
			if (wait_s == 0 || took < wait_s * 500)
				nap(j->hb_efd, interval - took > 0 ? interval - took : 0);
		} else if (res.status == 410 && atomic_load(&j->finishing)) {
			/* the echo of our own finish (or a real loss, which the finish call sees) */
			nap(j->hb_efd, interval);
		} else if (res.status == 410 || res.cancelled) {
			/* gone, or stopping */
		} else {
			failures++;
			atomic_fetch_add(&stats.hb_errors, 1);
			if (failures == 1 || failures % 10 == 0)
				say(j, "heartbeat failed (%d in a row): %s", failures, rn_error_last());
			long cap = ttl / 4 < 5000 ? ttl / 4 : 5000;
			nap(j->hb_efd, rn_backoff_ms(failures, RETRY_BASE_MS, cap > RETRY_BASE_MS ? cap : RETRY_BASE_MS));
		}
		json_decref(res.answer);
	}
	return NULL;
}

/* ---- the log ----------------------------------------------------------------------------- */

static void save_offset(rn_ajob *j)
{
	char *path = rn_xasprintf("%s/log.offset", j->dir), *tmp = rn_xasprintf("%s/log.offset.tmp", j->dir);
	char num[32];
	int n = snprintf(num, sizeof(num), "%llu\n", (unsigned long long)j->log_off);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		int ok = rn_write_all(fd, num, (size_t)n) == 0;
		close(fd);
		if (ok)
			rename(tmp, path);
	}
	free(path);
	free(tmp);
}

enum { IO_DONE = 0, IO_RETRY = 1, IO_GONE = -1 };

uint64_t rn_ajob_log_next(int ok, long status, const json_t *answer, uint64_t off, size_t sent, uint64_t size)
{
	json_t *o = json_object_get(answer, "offset");
	uint64_t server = json_is_integer(o) && json_integer_value(o) >= 0 ? (uint64_t)json_integer_value(o) : UINT64_MAX;
	if (!ok && !(status == 409 && server != UINT64_MAX))
		return UINT64_MAX;
	/* the server's length: where the next append starts (a 409 means a gap: resend from there;
	 * a length past what we have cannot be ours, so never skip ahead) */
	if (server == UINT64_MAX)
		server = off + (uint64_t)sent;
	return server <= size ? server : size;
}

int rn_ajob_assignment(const json_t *answer, const char **lease, json_t **spec, long *ttl_ms)
{
	*lease = json_string_value(json_object_get(answer, "lease"));
	*spec = json_object_get(answer, "job");
	json_int_t t = json_integer_value(json_object_get(answer, "lease_ttl_ms"));
	*ttl_ms = t >= 1000 && t <= INT64_C(86400000) ? (long)t : 30000;
	if (!rn_ajob_lease_ok(*lease))
		return rn_error_set("an assignment with an unusable lease id"), RN_EINVALID;
	if (!json_is_object(*spec))
		return rn_error_set("an assignment with no job"), RN_EINVALID;
	return 0;
}

/* Ship DIR/log from the server's offset up to the file's size. */
static int ship_log(rn_ajob *j)
{
	if (j->log_broken)
		return IO_DONE;
	if (j->log_fd < 0) {
		j->log_fd = open(j->log_path, O_RDONLY | O_CLOEXEC);
		if (j->log_fd < 0)
			return IO_DONE; /* nothing written yet */
	}
	for (;;) {
		if (atomic_load(&j->gone) || atomic_load(&j->abandon))
			return IO_GONE;
		struct stat st;
		if (fstat(j->log_fd, &st) < 0)
			return IO_DONE;
		uint64_t size = (uint64_t)st.st_size;
		if (j->log_off >= size)
			return IO_DONE;
		size_t n = size - j->log_off > j->chunk ? j->chunk : (size_t)(size - j->log_off);
		char *buf = rn_xmalloc(n);
		ssize_t got = pread(j->log_fd, buf, n, (off_t)j->log_off);
		if (got <= 0) {
			free(buf);
			return IO_DONE;
		}
		char suffix[64];
		snprintf(suffix, sizeof(suffix), "/log?offset=%llu", (unsigned long long)j->log_off);
		rn_api_call c = { .body = buf, .body_len = (size_t)got, .content_type = "application/octet-stream",
				  .timeout_ms = 60000 };
		rn_api_res res;
		int rc = lease_call(j, "POST", suffix, &c, &res);
		free(buf);
		uint64_t before = j->log_off;
		uint64_t next = rn_ajob_log_next(rc == 0, res.status, res.answer, before, (size_t)got, size);
		json_decref(res.answer);
		if (next != UINT64_MAX) {
			j->log_off = next;
			if (j->log_off > before)
				atomic_fetch_add(&stats.log_bytes, j->log_off - before);
			save_offset(j);
			j->io_failures = 0;
			continue;
		}
		if (res.status == 410 || atomic_load(&j->gone) || atomic_load(&j->abandon))
			return IO_GONE;
		if (res.status == 413 && j->chunk > LOG_CHUNK_MIN) {
			j->chunk /= 2;
			continue;
		}
		if (RN_API_TRANSIENT(res.status))
			return IO_RETRY;
		say(j, "the server refused the log: %s; the rest of it stays in %s", rn_error_last(), j->log_path);
		j->log_broken = 1;
		return IO_DONE;
	}
}

/* ---- step states from the event file ------------------------------------------------------- */

/* ms since the epoch of "2024-05-01T12:00:00.123Z", or 0. */
static int64_t parse_time(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!rest)
		return 0;
	int64_t ms = (int64_t)timegm(&tm) * 1000;
	if (*rest == '.') {
		int64_t frac = 0, scale = 100;
		for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
			frac += scale > 0 ? (*rest - '0') * scale : 0;
		ms += frac;
	}
	return ms;
}

static json_t *num_or_null(const json_t *v)
{
	return json_is_integer(v) ? json_integer(json_integer_value(v)) : json_null();
}

/* Apply one line of events.jsonl to the step table. */
static void apply_event(rn_ajob *j, const char *line, size_t len)
{
	json_t *e = json_loadb(line, len, 0, NULL);
	const char *type = json_string_value(json_object_get(e, "event"));
	json_t *idx = json_object_get(e, "step_index");
	if (!type || !json_is_integer(idx) || json_integer_value(idx) < 0 || json_integer_value(idx) > 100000) {
		json_decref(e);
		return;
	}
	char key[24];
	snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(idx));
	const char *name = json_string_value(json_object_get(e, "step"));
	json_t *attempt = json_object_get(e, "attempt");
	if (strcmp(type, "step_started") == 0) {
		json_object_set_new(j->steps, key,
				    json_pack("{s:O, s:s, s:s, s:o, s:n, s:I, s:n, s:n}", "index", idx, "name", name ? name : "",
					      "status", "running", "attempt", num_or_null(attempt), "exit_code",
					      "started_ms", (json_int_t)parse_time(json_string_value(json_object_get(e, "time"))),
					      "duration_ms", "reason"));
		json_object_set_new(j->dirty, key, json_true());
	} else if (strcmp(type, "step_finished") == 0) {
		json_t *s = json_object_get(j->steps, key);
		const char *st = json_string_value(json_object_get(e, "status"));
		if (!s || strcmp(json_string_value(json_object_get(s, "status")), "running") != 0) {
			/* finished without starting (skipped) */
			s = json_pack("{s:O, s:s, s:n}", "index", idx, "name", name ? name : "", "started_ms");
			json_object_set_new(j->steps, key, s);
		}
		json_object_set_new(s, "status", json_string(st ? st : "failure"));
		json_object_set_new(s, "attempt", num_or_null(attempt));
		json_object_set_new(s, "exit_code", num_or_null(json_object_get(e, "exit_code")));
		json_t *dur = json_object_get(e, "duration_ms");
		json_object_set_new(s, "duration_ms",
				    json_is_null(json_object_get(s, "started_ms")) ? json_null() : num_or_null(dur));
		json_t *reason = json_object_get(e, "reason");
		json_object_set_new(s, "reason", json_is_string(reason) ? json_incref(reason) : json_null());
		json_object_set_new(j->dirty, key, json_true());
	}
	json_decref(e);
}

/* Read the new complete lines of events.jsonl. */
static void read_events(rn_ajob *j)
{
	int fd = open(j->events_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char *buf = rn_xmalloc(EVENT_READ);
	for (;;) {
		ssize_t n = pread(fd, buf, EVENT_READ, (off_t)j->ev_off);
		if (n <= 0)
			break;
		j->ev_off += (uint64_t)n;
		const char *p = buf, *end = buf + n;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t take = (size_t)((nl ? nl : end) - p);
			if (!j->ev_skip) {
				if (j->ev_len + take > EVENT_LINE_MAX) {
					j->ev_skip = 1;
					j->ev_len = 0;
				} else {
					j->ev_line = rn_xreallocarray(j->ev_line, j->ev_len + take + 1, 1);
					memcpy(j->ev_line + j->ev_len, p, take);
					j->ev_len += take;
				}
			}
			if (!nl)
				break;
			if (!j->ev_skip)
				apply_event(j, j->ev_line, j->ev_len);
			j->ev_skip = 0;
			j->ev_len = 0;
			p = nl + 1;
		}
	}
	free(buf);
	close(fd);
	if (!j->ev_len) { /* nothing pending: give the line buffer back */
		free(j->ev_line);
		j->ev_line = NULL;
	}
}

/* Send the steps that changed. */
static int ship_steps(rn_ajob *j)
{
	if (!json_object_size(j->dirty))
		return IO_DONE;
	json_t *list = json_array();
	const char *key;
	json_t *v;
	json_object_foreach(j->dirty, key, v)
		json_array_append(list, json_object_get(j->steps, key));
	json_t *body = json_pack("{s:o}", "steps", list);
	rn_api_call c = { .json = body };
	rn_api_res res;
	int rc = lease_call(j, "POST", "/steps", &c, &res);
	json_decref(body);
	int cancel = json_is_true(json_object_get(res.answer, "cancel"));
	json_decref(res.answer);
	if (rc == 0) {
		json_object_clear(j->dirty);
		if (cancel)
			on_cancel(j);
		return IO_DONE;
	}
	if (res.status == 410 || atomic_load(&j->gone) || atomic_load(&j->abandon))
		return IO_GONE;
	if (RN_API_TRANSIENT(res.status))
		return IO_RETRY;
	say(j, "the server refused step states: %s", rn_error_last());
	json_object_clear(j->dirty);
	return IO_DONE;
}

/* One round of shipping: the log first (step results refer to it), then the steps. */
static int ship(rn_ajob *j)
{
	int rc = ship_log(j);
	if (rc == IO_DONE) {
		read_events(j);
		rc = ship_steps(j);
	}
	if (rc == IO_RETRY) {
		j->io_failures++;
		if (j->io_failures == 1 || j->io_failures % 10 == 0)
			say(j, "cannot reach the server (%d tries): %s; the log is kept on disk", j->io_failures,
			    rn_error_last());
		j->io_next = rn_now_ms() + rn_backoff_ms(j->io_failures, RETRY_BASE_MS, RETRY_CAP_MS);
	} else {
		j->io_failures = 0;
		j->io_next = rn_now_ms() + IO_TICK_MS;
	}
	return rc;
}

/* Ship until everything is sent (retrying with backoff), the lease is gone or we give up. */
static int ship_all(rn_ajob *j)
{
	for (;;) {
		int rc = ship(j);
		if (rc != IO_RETRY)
			return rc;
		int64_t left = j->io_next - rn_now_ms();
		if (left > 0)
			nap(j->sup_efd, left);
		if (atomic_load(&j->gone) || atomic_load(&j->abandon))
			return IO_GONE;
	}
}

/* ---- artifacts ----------------------------------------------------------------------------- */

static int format_ok(const char *f)
{
	static const char *const formats[] = { "tar.gz", "tar.xz", "tar.zst", "zip" };
	for (size_t i = 0; f && i < RN_ARRAY_LEN(formats); i++)
		if (strcmp(f, formats[i]) == 0)
			return 1;
	return 0;
}

/* Download the pipeline's artifacts into DIR/artifacts in the store format of the package step
 * (NAME.FORMAT + NAME.json). A missing or damaged one is noted in the log and left out (a
 * `download:` of it fails the step, as in a local run). IO_GONE if the lease went away. */
static int fetch_artifacts(rn_ajob *j)
{
	json_t *list = j->artifacts;
	size_t i;
	json_t *a;
	json_array_foreach(list, i, a) {
		const char *name = json_string_value(json_object_get(a, "name"));
		const char *format = json_string_value(json_object_get(a, "format"));
		const char *want = json_string_value(json_object_get(a, "sha256"));
		json_t *size = json_object_get(a, "size");
		if (!rn_artifact_name_ok(name) || !format_ok(format) || !want) {
			log_note(j, "artifact %s: bad description from the server, skipped", name ? name : "?");
			continue;
		}
		char *esc = rn_api_escape(name);
		char *path = rn_xasprintf("%s/artifacts/%s", j->base_path, esc);
		char *file = rn_xasprintf("%s/artifacts/%s.%s", j->dir, name, format);
		char *tmp = rn_xasprintf("%s.part", file);
		uint64_t max = json_is_integer(size) && json_integer_value(size) >= 0 ? (uint64_t)json_integer_value(size)
										     : ARTIFACT_MAX_DEFAULT;
		char got[65];
		int done = 0;
		for (int attempt = 1; attempt <= 5 && !done; attempt++) {
			long status = 0;
			int rc = rn_api_download(&j->api, path, tmp, max, got, &status, call_cancelled, j);
			if (rc == 0 && strcmp(got, want) == 0) {
				done = 1;
			} else if (status == 410) {
				on_gone(j);
			} else if (rc == 0) {
				rn_error_set("sha256 %s, expected %s", got, want);
			}
			if (done || atomic_load(&j->gone) || atomic_load(&j->abandon))
				break;
			if (!RN_API_TRANSIENT(status) || rc == RN_ETOOBIG || rc == RN_EIO)
				break;
			nap(j->sup_efd, rn_backoff_ms(attempt, 500, 5000));
		}
		if (done) {
			struct stat st;
			char *meta = rn_xasprintf("%s/artifacts/%s.json", j->dir, name);
			json_t *m = json_pack("{s:s, s:s, s:s, s:I, s:s, s:O?}", "name", name, "format", format, "file",
					      strrchr(file, '/') + 1, "bytes",
					      (json_int_t)(stat(tmp, &st) == 0 ? st.st_size : 0), "sha256", got, "job",
					      json_object_get(a, "job"));
			if (rename(tmp, file) < 0 || json_dump_file(m, meta, JSON_INDENT(2)) < 0) {
				log_note(j, "artifact %s: cannot store it: %s", name, strerror(errno));
			} else {
				json_object_set_new(j->prefilled, name, json_string(got));
				atomic_fetch_add(&stats.down, (unsigned long long)st.st_size);
				log_note(j, "artifact %s (%s, %lld bytes) downloaded", name, format, (long long)st.st_size);
			}
			json_decref(m);
			free(meta);
		} else if (!atomic_load(&j->gone) && !atomic_load(&j->abandon)) {
			log_note(j, "artifact %s: download failed: %s", name, rn_error_last());
		}
		unlink(tmp);
		free(esc);
		free(path);
		free(file);
		free(tmp);
		if (atomic_load(&j->gone) || atomic_load(&j->abandon))
			return IO_GONE;
	}
	return IO_DONE;
}

/* Upload what the job packaged (artifacts in DIR/artifacts that were not downloaded before).
 * IO_DONE, or IO_GONE; *failed gets a message when the server refused one (caller frees). */
static int upload_artifacts(rn_ajob *j, char **failed)
{
	char *adir = rn_xasprintf("%s/artifacts", j->dir);
	DIR *d = opendir(adir);
	int rc = IO_DONE;
	struct dirent *de;
	while (d && rc == IO_DONE && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		char *name = rn_xstrndup(de->d_name, n - 5);
		char *meta_path = rn_xasprintf("%s/%s", adir, de->d_name);
		json_t *m = json_load_file(meta_path, 0, NULL);
		const char *file = json_string_value(json_object_get(m, "file"));
		const char *sha = json_string_value(json_object_get(m, "sha256"));
		const char *format = json_string_value(json_object_get(m, "format"));
		const char *pre = json_string_value(json_object_get(j->prefilled, name));
		char *archive = NULL;
		if (!rn_artifact_name_ok(name) || !file || !sha || !format_ok(format) || strchr(file, '/')) {
			goto next;
		}
		if (pre && strcmp(pre, sha) == 0)
			goto next; /* downloaded, not made here */
		archive = rn_xasprintf("%s/%s", adir, file);
		char *esc = rn_api_escape(name), *fesc = rn_api_escape(format);
		char *suffix = rn_xasprintf("/artifacts/%s?sha256=%s&format=%s", esc, sha, fesc);
		free(esc);
		free(fesc);
		struct stat st;
		for (int attempt = 1;; attempt++) {
			rn_api_call c = { .file = archive, .timeout_ms = 6L * 3600 * 1000 };
			rn_api_res res;
			int r = lease_call(j, "PUT", suffix, &c, &res);
			json_decref(res.answer);
			if (r == 0) {
				if (stat(archive, &st) == 0)
					atomic_fetch_add(&stats.up, (unsigned long long)st.st_size);
				log_note(j, "artifact %s uploaded (%s, sha256 %s)", name, format, sha);
				break;
			}
			if (res.status == 410 || atomic_load(&j->gone) || atomic_load(&j->abandon)) {
				rc = IO_GONE;
				break;
			}
			if (!RN_API_TRANSIENT(res.status) || attempt >= 1000) {
				if (!*failed)
					*failed = rn_xasprintf("artifact %s: upload refused: %s", name, rn_error_last());
				log_note(j, "artifact %s: upload refused: %s", name, rn_error_last());
				break;
			}
			if (attempt == 1 || attempt % 10 == 0)
				say(j, "artifact %s: upload failed (%d tries): %s", name, attempt, rn_error_last());
			nap(j->sup_efd, rn_backoff_ms(attempt, RETRY_BASE_MS, RETRY_CAP_MS));
		}
		free(suffix);
	next:
		free(archive);
		json_decref(m);
		free(meta_path);
		free(name);
	}
	if (d)
		closedir(d);
	free(adir);
	return rc;
}

/* ---- the child ----------------------------------------------------------------------------- */

/* Start `runner __job DIR` in its own process group, stdin /dev/null, stdout and stderr to
 * DIR/job.err, dying with SIGTERM with this thread (PR_SET_PDEATHSIG). Called with j->mu held. */
static int spawn(rn_ajob *j)
{
	char *errpath = rn_xasprintf("%s/job.err", j->dir);
	char *argv[] = { j->self_exe, "__job", j->dir, NULL };
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int errfd = open(errpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int ep[2] = { -1, -1 };
	int rc = 0;
	free(errpath);
	if (nullfd < 0 || errfd < 0 || pipe2(ep, O_CLOEXEC) < 0) {
		rc = rn_error_errno("cannot start the job");
		goto out;
	}
	sigset_t none;
	sigemptyset(&none);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		rc = rn_error_errno("fork");
		goto out;
	}
	if (pid == 0) {
		/* the child: async-signal-safe calls only */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		setpgid(0, 0);
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(143);
		for (int s = 1; s < NSIG; s++)
			if (s != SIGKILL && s != SIGSTOP)
				sigaction(s, &dfl, NULL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(nullfd, 0) < 0 || dup2(errfd, 1) < 0 || dup2(errfd, 2) < 0 || chdir(j->dir) < 0)
			goto fail;
		execve(argv[0], argv, j->envp);
	fail:;
		int e = errno;
		ssize_t w = write(ep[1], &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	setpgid(pid, pid); /* also here: no window in which a group kill misses it */
	close(ep[1]);
	ep[1] = -1;
	int child_errno = 0;
	ssize_t n;
	while ((n = read(ep[0], &child_errno, sizeof(child_errno))) < 0 && errno == EINTR)
		;
	j->pid = pid;
	j->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (n == (ssize_t)sizeof(child_errno)) {
		errno = child_errno;
		rc = rn_error_errno("cannot run %s", j->self_exe);
	}
	if (rc == 0) {
		/* pid and start time, for the cleanup of a later agent process */
		char *pp = rn_xasprintf("%s/pid", j->dir), *txt = rn_xasprintf("%d\n", (int)pid);
		int fd = open(pp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			rn_write_all(fd, txt, strlen(txt));
			close(fd);
		}
		free(pp);
		free(txt);
	}
out:
	if (nullfd >= 0)
		close(nullfd);
	if (errfd >= 0)
		close(errfd);
	if (ep[0] >= 0)
		close(ep[0]);
	if (ep[1] >= 0)
		close(ep[1]);
	return rc;
}

/* Wait for the child to exit, shipping the log and steps as they grow; returns its wait status. */
static int supervise(rn_ajob *j)
{
	int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ino >= 0 && inotify_add_watch(ino, j->dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
		close(ino);
		ino = -1;
	}
	int wstatus = 0, term_sent = 0, cancel_sent = 0, pending = 1, exited = 0;
	int64_t kill_at = 0;
	for (;;) {
		if (j->pidfd < 0) { /* no pidfd (old kernel): look every tick */
			pid_t r = waitpid(j->pid, &wstatus, WNOHANG);
			if (r == j->pid || (r < 0 && errno == ECHILD)) {
				exited = 1;
				break;
			}
		}
		int64_t now = rn_now_ms();
		int stop_all = atomic_load(&j->gone) || atomic_load(&j->abandon);
		if ((atomic_load(&j->cancel) || atomic_load(&j->terminate)) && !cancel_sent) {
			cancel_sent = 1; /* on_cancel/terminate signalled already; make sure */
			signal_child(j, SIGTERM, 0);
		}
		if (stop_all && !term_sent) {
			term_sent = 1;
			signal_child(j, SIGTERM, 1);
			kill_at = now + GONE_KILL_MS;
		}
		if (kill_at && now >= kill_at) {
			signal_child(j, SIGKILL, 1);
			kill_at = 0;
		}
		if (pending && !stop_all && now >= j->io_next) {
			pending = 0;
			ship(j); /* a failure retries at io_next */
			if (j->io_failures)
				pending = 1;
			now = rn_now_ms();
		}
		struct pollfd p[3];
		int np = 0;
		p[np++] = (struct pollfd){ .fd = j->pidfd, .events = POLLIN };
		p[np++] = (struct pollfd){ .fd = j->sup_efd, .events = POLLIN };
		int64_t timeout = -1;
		if (ino >= 0 && !pending)
			p[np++] = (struct pollfd){ .fd = ino, .events = POLLIN };
		else if (ino < 0 || pending)
			timeout = j->io_next > now ? j->io_next - now : 0;
		if (ino < 0 && !pending) { /* no inotify: a tick */
			pending = 1;
			timeout = IO_TICK_MS;
		}
		if (stop_all)
			timeout = -1;
		if (kill_at && (timeout < 0 || kill_at - now < timeout))
			timeout = kill_at - now > 0 ? kill_at - now : 0;
		if (j->pidfd < 0 && (timeout < 0 || timeout > IO_TICK_MS))
			timeout = IO_TICK_MS;
		int pr = poll(p, (nfds_t)np, timeout > INT_MAX ? INT_MAX : (int)timeout);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		if (p[1].revents)
			drain(j->sup_efd);
		if (np > 2 && p[2].revents) {
			char buf[4096];
			while (read(ino, buf, sizeof(buf)) > 0)
				;
			pending = 1;
		}
		if (p[0].revents)
			break;
	}
	if (ino >= 0)
		close(ino);
	pid_t r = j->pid;
	while (!exited && (r = waitpid(j->pid, &wstatus, 0)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&j->mu);
	j->reaped = 1;
	pthread_mutex_unlock(&j->mu);
	/* what is left of the group (nothing normally: steps run in their own sessions) */
	kill(-j->pid, SIGKILL);
	return r < 0 ? -1 : wstatus;
}

/* The final status, outputs and reason: result.json, or what the exit status says. */
static json_t *read_result(rn_ajob *j, int wstatus)
{
	char *path = rn_xasprintf("%s/result.json", j->dir);
	json_t *r = json_load_file(path, 0, NULL);
	free(path);
	const char *st = json_string_value(json_object_get(r, "status"));
	if (r && st &&
	    (!strcmp(st, "success") || !strcmp(st, "failure") || !strcmp(st, "timed out") || !strcmp(st, "cancelled"))) {
		if (!json_is_object(json_object_get(r, "outputs")))
			json_object_set_new(r, "outputs", json_object());
		return r;
	}
	json_decref(r);
	int sig = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
	int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
	if (sig == SIGTERM || sig == SIGINT || code == 143 || code == 130)
		return json_pack("{s:s, s:{}, s:s}", "status", "cancelled", "outputs", "reason", "cancelled");
	char *why = sig ? rn_xasprintf("the job process was killed by signal %d (%s)", sig, strsignal(sig))
			: rn_xasprintf("the job process exited with status %d without a result", code);
	/* what it said on stderr, into the log */
	char *err = rn_xasprintf("%s/job.err", j->dir), *text = NULL;
	size_t len = 0;
	int fd = open(err, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		struct stat stt;
		off_t from = fstat(fd, &stt) == 0 && stt.st_size > ERR_COPY_MAX ? stt.st_size - ERR_COPY_MAX : 0;
		text = rn_xmalloc(ERR_COPY_MAX + 1);
		ssize_t n = pread(fd, text, ERR_COPY_MAX, from);
		len = n > 0 ? (size_t)n : 0;
		text[len] = '\0';
		close(fd);
	}
	log_note(j, "%s", why);
	for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : line + strlen(line)) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (*line)
			log_note(j, "  %s", line);
	}
	free(text);
	free(err);
	json_t *out = json_pack("{s:s, s:{}, s:s}", "status", "failure", "outputs", "reason", why);
	free(why);
	return out;
}

/* POST finish until the server has it (or the lease is gone, or the agent gives up). */
static int finish(rn_ajob *j, json_t *result)
{
	json_t *body = json_pack("{s:O, s:O, s:O?}", "status", json_object_get(result, "status"), "outputs",
				 json_object_get(result, "outputs"), "reason", json_object_get(result, "reason"));
	int rc = IO_GONE;
	atomic_store(&j->finishing, 1);
	for (int attempt = 1;; attempt++) {
		rn_api_call c = { .json = body, .cancel = finish_cancelled, .cb_arg = j };
		rn_api_res res;
		int r = lease_call(j, "POST", "/finish", &c, &res);
		json_decref(res.answer);
		if (r == 0) {
			rc = IO_DONE;
			break;
		}
		if (res.status == 410 || atomic_load(&j->abandon))
			break;
		if (!RN_API_TRANSIENT(res.status)) {
			say(j, "the server refused the result: %s", rn_error_last());
			break;
		}
		if (attempt == 1 || attempt % 10 == 0)
			say(j, "cannot report the result (%d tries): %s", attempt, rn_error_last());
		nap(j->sup_efd, rn_backoff_ms(attempt, RETRY_BASE_MS, RETRY_CAP_MS));
	}
	json_decref(body);
	return rc;
}

static void count_status(const char *st)
{
	if (!strcmp(st, "success"))
		atomic_fetch_add(&stats.success, 1);
	else if (!strcmp(st, "cancelled"))
		atomic_fetch_add(&stats.cancelled, 1);
	else if (!strcmp(st, "timed out"))
		atomic_fetch_add(&stats.timed_out, 1);
	else if (!strcmp(st, "lost"))
		atomic_fetch_add(&stats.lost, 1);
	else
		atomic_fetch_add(&stats.failure, 1);
}

static void *sup_main(void *arg)
{
	rn_ajob *j = arg;
	json_t *result = NULL;
	int wstatus = 0, started = 0;
	char *failed = NULL;
	if (fetch_artifacts(j) == IO_DONE) {
		pthread_mutex_lock(&j->mu);
		if (!atomic_load(&j->cancel) && !atomic_load(&j->terminate) && !atomic_load(&j->gone) &&
		    !atomic_load(&j->abandon)) {
			if (spawn(j) == 0)
				started = 1;
			else
				log_note(j, "%s", rn_error_last());
		}
		pthread_mutex_unlock(&j->mu);
	}
	if (started) {
		atomic_fetch_add(&stats.started, 1);
		say(j, "started (pid %d)", (int)j->pid);
		wstatus = supervise(j);
		result = read_result(j, wstatus);
	} else if (j->pid > 0) {
		/* exec failed: reap it */
		waitpid(j->pid, &wstatus, 0);
		j->reaped = 1;
		result = json_pack("{s:s, s:{}, s:s}", "status", "failure", "outputs", "reason", "the job process could not start");
	} else if (atomic_load(&j->cancel) || atomic_load(&j->terminate)) {
		result = json_pack("{s:s, s:{}, s:s}", "status", "cancelled", "outputs", "reason", "cancelled");
	} else {
		result = json_pack("{s:s, s:{}, s:s}", "status", "failure", "outputs", "reason", "the job could not start");
	}
	/* the slot is free for the next job while this one reports */
	atomic_store(&j->child_done, 1);
	poke(j->main_wake);
	const char *final = "lost";
	if (!atomic_load(&j->gone) && !atomic_load(&j->abandon) && ship_all(j) == IO_DONE &&
	    upload_artifacts(j, &failed) == IO_DONE) {
		if (failed && !strcmp(json_string_value(json_object_get(result, "status")), "success")) {
			json_object_set_new(result, "status", json_string("failure"));
			json_object_set_new(result, "reason", json_string(failed));
		}
		/* the notes about uploads, then the result */
		if (ship_all(j) == IO_DONE && finish(j, result) == IO_DONE)
			final = json_string_value(json_object_get(result, "status"));
	}
	snprintf(j->status, sizeof(j->status), "%s", final);
	count_status(final);
	if (!strcmp(final, "lost"))
		say(j, "dropped (%s)", atomic_load(&j->abandon) ? "the agent gave up on the server" : "lease gone");
	else {
		const char *why = json_string_value(json_object_get(result, "reason"));
		say(j, "%s%s%s", final, why && strcmp(why, final) ? ": " : "", why && strcmp(why, final) ? why : "");
	}
	free(failed);
	json_decref(result);
	atomic_store(&j->hb_stop, 1);
	poke(j->hb_efd);
	if (j->hb_started) {
		pthread_join(j->hb, NULL);
		j->hb_started = 0;
	}
	if (!j->keep)
		rn_rm_rf(j->dir);
	atomic_fetch_sub(&stats.active, 1);
	atomic_store(&j->finished, 1);
	poke(j->main_wake);
	return NULL;
}

/* ---- start and end ------------------------------------------------------------------------- */

static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, THREAD_STACK);
	/* no signal may reach these threads (the main thread reads them from a signalfd) */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(t, &a, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	if (e) {
		errno = e;
		return rn_error_errno("pthread_create");
	}
	return 0;
}

static void ajob_free_fields(rn_ajob *j)
{
	rn_api_free(&j->api);
	if (j->sup_efd >= 0)
		close(j->sup_efd);
	if (j->hb_efd >= 0)
		close(j->hb_efd);
	if (j->pidfd >= 0)
		close(j->pidfd);
	if (j->log_fd >= 0)
		close(j->log_fd);
	pthread_mutex_destroy(&j->mu);
	json_decref(j->artifacts);
	json_decref(j->steps);
	json_decref(j->dirty);
	json_decref(j->prefilled);
	rn_masker_free(j->masker);
	free(j->lease);
	free(j->dir);
	free(j->id);
	free(j->name);
	free(j->log_path);
	free(j->events_path);
	free(j->base_path);
	free(j->self_exe);
	free(j->ev_line);
	free(j);
}

int rn_ajob_start(rn_ajob **out, const rn_ajob_opts *o, const char *lease, long ttl_ms, json_t *spec)
{
	*out = NULL;
	if (!rn_ajob_lease_ok(lease))
		return rn_error_set("invalid lease id"), RN_EINVALID;
	rn_ajob *j = rn_xcalloc(1, sizeof(*j));
	rn_api_init(&j->api, o->api->base, o->api->token);
	j->lease = rn_xstrdup(lease);
	j->dir = rn_xasprintf("%s/%s", o->jobs_dir, lease);
	j->log_path = rn_xasprintf("%s/log", j->dir);
	j->events_path = rn_xasprintf("%s/events.jsonl", j->dir);
	j->base_path = rn_xasprintf("/api/v1/leases/%s", lease);
	const json_t *id = json_object_get(spec, "id");
	j->id = json_is_string(id) ? rn_xstrdup(json_string_value(id))
		: json_is_integer(id) ? rn_xasprintf("%lld", (long long)json_integer_value(id)) : rn_xstrdup("?");
	const char *nm = json_string_value(json_object_get(spec, "name"));
	j->name = rn_xstrdup(nm ? nm : "?");
	/* a private copy of what the threads need (nothing shared with the caller's JSON) */
	json_t *arts = json_object_get(spec, "artifacts");
	j->artifacts = json_is_array(arts) ? json_deep_copy(arts) : json_array();
	j->envp = o->envp;
	j->self_exe = rn_xstrdup(o->self_exe);
	j->keep = o->keep;
	j->main_wake = o->wake_fd;
	j->ttl_ms = ttl_ms >= 1000 ? ttl_ms : 30000;
	j->pidfd = j->log_fd = -1;
	j->chunk = LOG_CHUNK_MAX;
	j->steps = json_object();
	j->dirty = json_object();
	j->prefilled = json_object();
	j->masker = rn_masker_new();
	pthread_mutex_init(&j->mu, NULL);
	j->sup_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	j->hb_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(spec, "secrets"), k, v)
		if (json_is_string(v))
			rn_masker_add(j->masker, json_string_value(v)); /* short ones: __job refuses the job */
	int rc = 0;
	if (j->sup_efd < 0 || j->hb_efd < 0) {
		rc = rn_error_errno("eventfd");
		goto fail;
	}
	if (mkdir(j->dir, 0700) < 0) {
		rc = errno == EEXIST ? (rn_error_set("%s exists: the lease was taken before", j->dir), RN_EINVALID)
				     : rn_error_errno("mkdir %s", j->dir);
		goto fail;
	}
	char *sp = rn_xasprintf("%s/job.json", j->dir), *ap = rn_xasprintf("%s/artifacts", j->dir);
	/* one write (json_dumpfd writes token by token) */
	char *text = json_dumps(spec, JSON_COMPACT);
	int fd = open(sp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int ok = fd >= 0 && text && rn_write_all(fd, text, strlen(text)) == 0;
	if (fd >= 0 && close(fd) < 0)
		ok = 0;
	if (!ok || mkdir(ap, 0755) < 0)
		rc = rn_error_errno("cannot write %s", sp);
	if (text) {
		memset(text, 0, strlen(text)); /* it holds the job's secrets */
		free(text);
	}
	int lfd = rc == 0 ? open(j->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
	if (lfd >= 0)
		close(lfd);
	free(sp);
	free(ap);
	if (rc < 0) {
		rn_rm_rf(j->dir);
		goto fail;
	}
	if ((rc = start_thread(&j->hb, hb_main, j)) < 0) {
		rn_rm_rf(j->dir);
		goto fail;
	}
	j->hb_started = 1;
	atomic_fetch_add(&stats.active, 1);
	if ((rc = start_thread(&j->sup, sup_main, j)) < 0) {
		atomic_fetch_sub(&stats.active, 1);
		atomic_store(&j->hb_stop, 1);
		poke(j->hb_efd);
		pthread_join(j->hb, NULL);
		rn_rm_rf(j->dir);
		goto fail;
	}
	*out = j;
	return 0;
fail:
	ajob_free_fields(j);
	return rc;
}

void rn_ajob_free(rn_ajob *j)
{
	if (!j)
		return;
	pthread_join(j->sup, NULL);
	ajob_free_fields(j);
}

/* ---- leftovers of an earlier agent process -------------------------------------------------- */

/* 1 if pid runs `runner __job DIR` for this dir. */
static int is_our_job(pid_t pid, const char *dir)
{
	char buf[PATH_MAX + 64];
	ssize_t n = rn_read_proc_file(pid, "cmdline", buf, sizeof(buf));
	if (n <= 0)
		return 0;
	/* argv: exe \0 __job \0 dir \0 */
	const char *a1 = memchr(buf, '\0', (size_t)n);
	if (!a1 || a1 + 1 >= buf + n || strcmp(a1 + 1, "__job") != 0)
		return 0;
	const char *a2 = a1 + 1 + strlen(a1 + 1) + 1;
	return a2 < buf + n && strcmp(a2, dir) == 0;
}

int rn_ajob_cleanup_leftovers(const char *jobs_dir, long grace_ms)
{
	DIR *d = opendir(jobs_dir);
	if (!d)
		return 0;
	char **dirs = NULL;
	pid_t *pids = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		rn_grow(&dirs, &cap, n + 1, sizeof(*dirs));
		pids = rn_xreallocarray(pids, cap, sizeof(*pids));
		dirs[n] = rn_xasprintf("%s/%s", jobs_dir, de->d_name);
		pids[n] = 0;
		char *pp = rn_xasprintf("%s/pid", dirs[n]), *txt = NULL;
		size_t len;
		if (rn_read_file(&txt, &len, pp, 64) == 0) {
			pid_t pid = (pid_t)atoi(txt);
			if (pid > 1 && is_our_job(pid, dirs[n])) {
				fprintf(stderr, "runner agent: stopping the job left running in %s (pid %d)\n", dirs[n], (int)pid);
				kill(-pid, SIGTERM);
				kill(pid, SIGTERM);
				pids[n] = pid;
			}
		}
		free(txt);
		free(pp);
		n++;
	}
	closedir(d);
	/* they stop their steps as on a cancel; whatever is left after the grace is killed */
	int64_t end = rn_now_ms() + grace_ms;
	for (size_t i = 0; i < n; i++) {
		while (pids[i] && is_our_job(pids[i], dirs[i]) && rn_now_ms() < end) {
			struct timespec ts = { 0, 20 * 1000000L };
			nanosleep(&ts, NULL);
		}
		if (pids[i] && is_our_job(pids[i], dirs[i])) {
			kill(-pids[i], SIGKILL);
			kill(pids[i], SIGKILL);
		}
	}
	int removed = 0;
	for (size_t i = 0; i < n; i++) {
		fprintf(stderr, "runner agent: removing %s (a lease of an earlier run; never run again)\n", dirs[i]);
		if (rn_rm_rf(dirs[i]) == 0)
			removed++;
		free(dirs[i]);
	}
	free(dirs);
	free(pids);
	return removed;
}
