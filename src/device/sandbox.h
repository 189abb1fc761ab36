/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A compartment: one app's process tree, started with every layer Linux offers
 * (docs/compartments.md).
 *
 *   pavised ──clone(NEWNS|NEWPID|NEWIPC|NEWUTS)──> init (pid 1 of the compartment)
 *                                                    └─fork─> app (pid 2) ──execve──> entry point
 *
 * The parent (pavised, root) clones the init: on cgroup v2 straight into the app's cgroup
 * (CLONE_INTO_CGROUP); on v1 with the group's "tasks" files open, which the init writes
 * "0" to itself (a thread moving itself takes no global lock, where moving another process
 * waits for an RCU grace period). The child builds the mount namespace (a tmpfs root holding the
 * image read-only at /app, the libraries the entry point needs, /dev with the null devices and the
 * declared peripherals, a private /proc and size-limited /tmp, /storage, /etc with resolv.conf
 * naming the app's DNS stub) and pivots into it; then joins the cgroup (v1), unshares a
 * cgroup namespace, drops to the app's
 * uid/gid with no supplementary groups and empty capability sets (bounding, inheritable
 * and ambient included), sets no_new_privs, rlimits and Landlock (filesystem; TCP bind
 * where ABI >= 4; execute only the entry point), and forks the app. The app process closes every fd
 * but 0, 1, 2 and SB_CHAN_FD, loads the seccomp filter with a user-notification listener, hands the
 * listener to pavised over the status socket, and execs the entry point with the clean environment.
 *
 * init stays as pid 1: it reaps, forwards SIGTERM/SIGINT/SIGHUP to the app, and when the
 * app exits writes the app's wait status to the status socket and exits; the kernel then
 * kills whatever is left in the pid namespace.
 *
 * A syscall outside the allow-list blocks in the kernel and raises a notification on the
 * listener; pavised reads the syscall number (sb_seccomp_take), kills the compartment and
 * records the failure. If pavised is gone, the listener is closed and the syscall fails
 * with ENOSYS: denied either way.
 */
#ifndef PAVISE_DEVICE_SANDBOX_H
#define PAVISE_DEVICE_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pavise/err.h"

#include "cgroup.h"

#define SB_CHAN_FD       3      /* the app's SDK channel (PAVISE_FD=3) */
#define SB_APP_DIR       "/app" /* where the image is mounted */
#define SB_STORAGE_DIR   "/storage"
#define SB_MAX_BINDS     48
#define SB_MAX_ETC_FILES 8
#define SB_MAX_FILE_TEXT 4096

/* A file or device node of the host made visible in the compartment at the same path
 * (dst NULL) or at dst. Read-only unless writable. A device node keeps dev access; every
 * other bind is nodev. */
typedef struct sb_bind {
    const char *src;
    const char *dst; /* NULL: same as src */
    bool writable;
    bool device;
} sb_bind;

/* A small file created in the compartment's read-only /etc (resolv.conf, hosts, passwd). */
typedef struct sb_file {
    const char *name; /* a plain name under /etc, e.g. "resolv.conf" */
    const char *text; /* at most SB_MAX_FILE_TEXT bytes */
} sb_file;

/* The libraries an ELF file needs at run time (sb_elf_libs): host paths, each made visible
 * in the compartment at the same path. */
#define SB_MAX_LIBS 64
typedef struct sb_libs {
    char *path[SB_MAX_LIBS];
    size_t n;
    bool has_interp; /* path[0] is the file's PT_INTERP (the dynamic loader) */
} sb_libs;

/* A seccomp filter compiled once (sb_seccomp_build) and loaded by each app process. */
typedef struct sb_filter sb_filter;

typedef struct sb_spec {
    const char *name; /* component ID text: the hostname is "app-" + its first 8 chars */
    uid_t uid;        /* the app's own uid and gid (never 0) */
    gid_t gid;
    const char *image_dir;   /* the extracted image, mounted read-only, nosuid, nodev at /app */
    const char *entry_point; /* absolute inside the image, e.g. "/bin/hello": runs /app/bin/hello */
    char *const *argv;       /* argv[0] first, NULL-terminated */
    char *const *envp;       /* the whole environment, NULL-terminated */
    const char *storage_dir; /* NULL, or mounted read-write, nosuid, nodev, noexec at /storage */
    const sb_libs *libs;     /* from sb_elf_libs (resolved once per image by the caller), each
                              * bound read-only at its host path; NULL for a static entry point */
    const sb_bind *binds;    /* certificates (read-only), peripherals (device, writable) */
    size_t n_binds;
    const sb_file *etc; /* files of /etc */
    size_t n_etc;
    uint64_t tmp_bytes;         /* size of the private /tmp tmpfs (0: SB_DEFAULT_TMP_BYTES) */
    const uint16_t *bind_ports; /* TCP ports the app may bind (Landlock ABI >= 4) */
    size_t n_bind_ports;
    uint32_t nproc;           /* RLIMIT_NPROC (the app's uid is its own) */
    uint32_t nofile;          /* RLIMIT_NOFILE */
    const sb_filter *filter;  /* required */
    cg_group *cgroup;         /* init joins it before anything else runs; pavised always passes
                               * one, NULL is for tests and benchmarks */
    int stdout_fd, stderr_fd; /* become the app's 1 and 2 (-1: /dev/null; stdin is /dev/null) */
    int chan_fd;              /* becomes SB_CHAN_FD, or -1 */
} sb_spec;

#define SB_DEFAULT_TMP_BYTES (4u << 20)

/* A running compartment, as pavised sees it. */
typedef struct sb_proc {
    pid_t pid;     /* the init, in pavised's pid namespace */
    int pidfd;     /* the init's pidfd: readable once it has exited */
    int status_fd; /* pavised's end of the status socket (SOCK_SEQPACKET, CLOEXEC) */
} sb_proc;

/* Starts the compartment. Returns once the child has been cloned (it joins its cgroup itself);
 * setup inside the child continues concurrently and its outcome arrives on status_fd
 * (SB_EV_SETUP_FAILED or SB_EV_RUNNING). *out is filled only on success; the caller closes
 * pidfd and status_fd (sb_proc_close) after reaping pid. PV_ERR_INVALID_ARG (bad spec),
 * PV_ERR_IO (clone, cgroup attach). */
int sb_start(const sb_spec *s, sb_proc *out, pv_err *e);

typedef enum sb_event_kind {
    SB_EV_RUNNING = 1,      /* the entry point was exec'd (listener fd received before it) */
    SB_EV_SETUP_FAILED = 2, /* a layer could not be set up: step names it, err is errno */
    SB_EV_EXITED = 3,       /* the app exited: status is its wait status */
    SB_EV_LISTENER = 4,     /* fd: the seccomp listener; the receiver owns it */
} sb_event_kind;

#define SB_STEP_MAX 48

typedef struct sb_event {
    sb_event_kind kind;
    int status;             /* SB_EV_EXITED */
    int err;                /* SB_EV_SETUP_FAILED: errno */
    char step[SB_STEP_MAX]; /* SB_EV_SETUP_FAILED: "mount /app", "landlock", ... */
    int fd;                 /* SB_EV_LISTENER */
} sb_event;

/* Reads one event from a status socket (non-blocking caller: PV_ERR_NOT_FOUND when none is
 * ready). PV_ERR_TRUNCATED at end of stream (the init is gone), PV_ERR_FORMAT for a
 * malformed message (never trusted further). */
int sb_read_event(int status_fd, sb_event *ev, pv_err *e);

/* Takes one seccomp notification from a listener: the syscall number the app tried and
 * the pid that tried it. The syscall is not answered: the task stays blocked in it, and the
 * caller kills the compartment (sb_signal SIGKILL), so nothing of the app runs after the
 * violation. PV_ERR_NOT_FOUND when none is pending (or it was already cancelled), PV_ERR_IO. */
int sb_seccomp_take(int listener, int *syscall_nr, pid_t *pid, pv_err *e);

/* SIGTERM (graceful) or SIGKILL to the compartment's init (which forwards SIGTERM, SIGINT
 * and SIGHUP to the app; killing the init ends the whole pid namespace). PV_OK,
 * PV_ERR_NOT_FOUND when the init has already exited, PV_ERR_IO. */
int sb_signal(const sb_proc *p, int sig);

void sb_proc_close(sb_proc *p);

/* Compiles the allow-list (docs/compartments.md §seccomp) for this architecture into a
 * BPF program whose default action is a user notification. PV_ERR_INTERNAL if libseccomp
 * fails. */
int sb_seccomp_build(sb_filter **out, pv_err *e);
void sb_filter_free(sb_filter *f);

/* The libraries the ELF file needs at run time: its PT_INTERP and the transitive closure
 * of DT_NEEDED, resolved in the standard directories (and DT_RUNPATH inside the image).
 * Host paths, absolute, each once; libraries found inside the image are followed but not
 * listed (the image is already at /app). A statically linked file needs none. The ELF is
 * untrusted: bounded reads, every offset checked. *out is filled only on success (free it
 * with sb_libs_free). PV_ERR_FORMAT, PV_ERR_NOT_FOUND (a needed library missing),
 * PV_ERR_TOO_LARGE (more than SB_MAX_LIBS), PV_ERR_IO. */
int sb_elf_libs(const char *image_dir, const char *entry_point, sb_libs *out, pv_err *e);
void sb_libs_free(sb_libs *l);

/* The Landlock ABI the compartments use: the best this kernel offers, capped at the newest
 * this code knows (7); 0 when Landlock is unavailable (the layer is then skipped, and a
 * warning logged once). */
int sb_landlock_abi(void);

#endif
