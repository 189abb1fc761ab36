/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compartment's parts, shared by sandbox.c (the process shape), sb_mount.c (the mount
 * namespace), sb_landlock.c, sb_seccomp.c and sb_elf.c. docs/compartments.md describes
 * each layer.
 *
 * Everything that runs in the cloned child (the functions marked "child") uses system calls
 * only: no allocation, no stdio, no locks. The child is a copy of a process that may have
 * had other threads, whose locks (malloc's among them) may be held forever in the copy.
 * What the child needs is prepared by the parent beforehand (sb_plan).
 */
#ifndef PAVISE_DEVICE_SB_INTERNAL_H
#define PAVISE_DEVICE_SB_INTERNAL_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"

/* ---- the status socket (init -> pavised) ----
 * One fixed-layout message per SOCK_SEQPACKET packet, host byte order (both ends are on the
 * same machine). Unused fields are zero. SB_EV_LISTENER carries exactly one descriptor
 * (SCM_RIGHTS); no other message carries any. */
#define SB_WIRE_MAGIC 0x50565331u /* "PVS1" */
typedef struct sb_wire {
    uint32_t magic;
    uint32_t kind;          /* sb_event_kind */
    int32_t value;          /* EXITED: wait status; SETUP_FAILED: errno */
    char step[SB_STEP_MAX]; /* SETUP_FAILED: printable ASCII, NUL-terminated, zero-padded */
} sb_wire;

/* ---- ELF (sb_elf.c) ---- */
#define SB_ELF_MAX_NEEDED 64  /* DT_NEEDED entries of one object */
#define SB_ELF_MAX_PHNUM  512 /* program headers of one object */
#define SB_ELF_MAX_LOADS  64  /* PT_LOAD segments of one object */

/* What sb_elf_parse found. The strings point into the parsed buffer and are NUL-terminated
 * inside it. */
typedef struct sb_elf_info {
    bool is64;          /* ELFCLASS64 */
    bool be;            /* ELFDATA2MSB */
    uint16_t type;      /* ET_EXEC or ET_DYN */
    uint16_t machine;   /* e_machine */
    const char *interp; /* PT_INTERP, or NULL */
    const char *needed[SB_ELF_MAX_NEEDED];
    size_t n_needed;
    const char *runpath; /* DT_RUNPATH, else DT_RPATH, else NULL */
} sb_elf_info;

/* Parses an ELF file held in memory (the fuzzing entry point): header, program headers,
 * PT_INTERP, and from PT_DYNAMIC the DT_NEEDED names and DT_RUNPATH/DT_RPATH through
 * DT_STRTAB/DT_STRSZ mapped by the PT_LOAD segments. Every offset and size is checked
 * against len. *out is zeroed on entry. PV_ERR_FORMAT, PV_ERR_TOO_LARGE (more than the
 * SB_ELF_MAX_* limits). */
int sb_elf_parse(const uint8_t *p, size_t len, sb_elf_info *out, pv_err *e);

/* sb_elf_libs with the system library directories looked up under sysroot ("" for the
 * host; a directory in tests). The paths it returns include sysroot. */
int sb_elf_libs_at(const char *sysroot, const char *image_dir, const char *entry_point,
                   sb_libs *out, pv_err *e);

/* ---- seccomp (sb_seccomp.c) ---- */
struct sb_filter {
    struct sock_filter *insns;
    unsigned short len;
};

/* Child: loads f on the calling thread (no_new_privs must be set) with a new listener.
 * Returns the listener descriptor, or -1 with errno. */
int sb_seccomp_load(const sb_filter *f);

/* ---- Landlock (sb_landlock.c) ---- */
/* The access rights, as in <linux/landlock.h> of Linux 6.12 (the system headers may be
 * older than the kernel). */
#define SB_LL_EXECUTE     (1ull << 0)
#define SB_LL_WRITE_FILE  (1ull << 1)
#define SB_LL_READ_FILE   (1ull << 2)
#define SB_LL_READ_DIR    (1ull << 3)
#define SB_LL_REMOVE_DIR  (1ull << 4)
#define SB_LL_REMOVE_FILE (1ull << 5)
#define SB_LL_MAKE_CHAR   (1ull << 6)
#define SB_LL_MAKE_DIR    (1ull << 7)
#define SB_LL_MAKE_REG    (1ull << 8)
#define SB_LL_MAKE_SOCK   (1ull << 9)
#define SB_LL_MAKE_FIFO   (1ull << 10)
#define SB_LL_MAKE_BLOCK  (1ull << 11)
#define SB_LL_MAKE_SYM    (1ull << 12)
#define SB_LL_REFER       (1ull << 13) /* ABI 2 */
#define SB_LL_TRUNCATE    (1ull << 14) /* ABI 3 */
#define SB_LL_IOCTL_DEV   (1ull << 15) /* ABI 5 */
#define SB_LL_FILE_RIGHTS                                                                          \
    (SB_LL_EXECUTE | SB_LL_WRITE_FILE | SB_LL_READ_FILE | SB_LL_TRUNCATE | SB_LL_IOCTL_DEV)
#define SB_LL_READ (SB_LL_READ_FILE | SB_LL_READ_DIR)
/* What an app may do in its own writable directories (/tmp, /storage). */
#define SB_LL_RW_DIR                                                                               \
    (SB_LL_READ | SB_LL_WRITE_FILE | SB_LL_TRUNCATE | SB_LL_REMOVE_DIR | SB_LL_REMOVE_FILE |       \
     SB_LL_MAKE_DIR | SB_LL_MAKE_REG | SB_LL_MAKE_SYM | SB_LL_MAKE_SOCK | SB_LL_MAKE_FIFO |        \
     SB_LL_REFER)

typedef struct sb_ll_rule {
    const char *path; /* in the compartment */
    uint64_t access;  /* SB_LL_*; rights the ABI does not know are dropped */
} sb_ll_rule;

/* Child: restricts the calling thread (and what it forks) with the rules; no_new_privs must
 * be set. abi 0 does nothing. Returns 0, or -1 with errno (and *failed naming the rule's
 * path when one was at fault). */
int sb_landlock_apply(int abi, const sb_ll_rule *rules, size_t n, const uint16_t *ports,
                      size_t n_ports, const char **failed);

/* ---- the mount namespace (sb_mount.c) ---- */
typedef struct sb_mnt {
    const char *src;     /* host path (borrowed from the spec) */
    char *target;        /* where it is attached, under SB_STAGE before pivot_root */
    unsigned long flags; /* MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC for its remount */
    bool device;         /* must be a character or block device */
    const char *label;   /* names it in a setup failure */
} sb_mnt;

/* Everything the child needs, computed by the parent before clone. */
typedef struct sb_plan {
    char **dirs; /* directories to create under SB_STAGE, parents first */
    size_t n_dirs;
    sb_mnt *mnt; /* binds: the image, libraries, device nodes, storage, the spec's binds */
    size_t n_mnt;
    char **links; /* symbolic links in /dev: pairs (target, staged path) */
    size_t n_links;
    char **etc_path; /* staged path of each spec->etc file */
    char *tmp_target, *proc_target;
    char tmp_opts[128];
    char hostname[16];
    char *exec_path;   /* the entry point in the compartment: /app/... */
    sb_ll_rule *rules; /* Landlock rules, paths in the compartment */
    size_t n_rules;
    int abi; /* Landlock ABI to use */
    const sb_spec *spec;
    struct sb_arena *arena; /* owns every string above */
} sb_plan;

/* The new root is assembled on a tmpfs mounted here (in the child's own mount namespace,
 * after every source has been captured with open_tree), then pivoted into. */
#define SB_STAGE "/tmp"

/* Parent: validates the spec's paths and computes the plan. PV_ERR_INVALID_ARG,
 * PV_ERR_NOMEM. */
int sb_plan_build(const sb_spec *s, int abi, sb_plan **out, pv_err *e);
void sb_plan_free(sb_plan *p);

/* Child: builds the root and pivots into it; the working directory is left at /app. On
 * failure returns -1 with errno set and step (SB_STEP_MAX bytes) naming what failed. */
int sb_mount_setup(const sb_plan *p, char *step);

/* Writes prefix and then as much of path as fits into step (SB_STEP_MAX, NUL-terminated). */
void sb_step(char *step, const char *prefix, const char *path);

#endif
