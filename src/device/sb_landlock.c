/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Landlock for a compartment, with the best ABI the kernel offers (1 to 7; what each adds
 * is in docs/compartments.md §Landlock). The structures and constants are declared here
 * rather than taken from <linux/landlock.h>, which on the build machine may be older than
 * the kernel the device runs; the kernel's ABI version says which of them it understands.
 */
#include "sb_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pavise/log.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule       445
#define SYS_landlock_restrict_self  446
#endif

#define SB_LL_NEWEST 7 /* the newest ABI this file knows */

#define LL_CREATE_RULESET_VERSION (1u << 0)
#define LL_RULE_PATH_BENEATH      1
#define LL_RULE_NET_PORT          2
#define LL_ACCESS_NET_BIND_TCP    (1ull << 0) /* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX    (1ull << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL           (1ull << 1) /* ABI 6 */

/* The kernel copies as much of it as it knows and requires the rest to be zero. */
struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net; /* ABI 4 */
    uint64_t scoped;             /* ABI 6 */
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

/* The filesystem rights an ABI handles. */
static uint64_t fs_handled(int abi)
{
    uint64_t h = (SB_LL_MAKE_SYM << 1) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
    if (abi >= 2) {
        h |= SB_LL_REFER;
    }
    if (abi >= 3) {
        h |= SB_LL_TRUNCATE;
    }
    if (abi >= 5) {
        h |= SB_LL_IOCTL_DEV;
    }
    return h;
}

int sb_landlock_abi(void)
{
    /* Asked once: the answer cannot change while the kernel runs. */
    static atomic_int cached = -1;
    int abi = atomic_load(&cached);
    if (abi >= 0) {
        return abi;
    }
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    if (v <= 0) {
        abi = 0;
        pv_warn("Landlock is not available (%s): compartments run without it",
                v < 0 ? "the kernel does not offer it" : "no ABI version");
    } else {
        abi = v > SB_LL_NEWEST ? SB_LL_NEWEST : (int)v;
        pv_debug("Landlock ABI %ld offered, %d used", v, abi);
    }
    atomic_store(&cached, abi);
    return abi;
}

int sb_landlock_apply(int abi, const sb_ll_rule *rules, size_t n, const uint16_t *ports,
                      size_t n_ports, const char **failed)
{
    *failed = NULL;
    if (abi <= 0) {
        return 0;
    }
    struct ll_ruleset_attr attr = {.handled_access_fs = fs_handled(abi)};
    if (abi >= 4) {
        /* Only bind is handled: connect stays open, the firewall decides the hosts. */
        attr.handled_access_net = LL_ACCESS_NET_BIND_TCP;
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
    if (rs < 0) {
        return -1;
    }
    int err = 0;
    for (size_t i = 0; i < n && err == 0; i++) {
        int fd = open(rules[i].path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            err = errno;
            *failed = rules[i].path;
            break;
        }
        /* A rule on a file may only carry rights that apply to files. */
        struct stat st;
        uint64_t access = rules[i].access & attr.handled_access_fs;
        if (fstat(fd, &st) != 0) {
            err = errno;
            *failed = rules[i].path;
            close(fd);
            break;
        }
        if (!S_ISDIR(st.st_mode)) {
            access &= SB_LL_FILE_RIGHTS;
        }
        struct ll_path_beneath_attr pb = {.allowed_access = access, .parent_fd = fd};
        if (pb.allowed_access != 0 &&
            syscall(SYS_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0) != 0) {
            err = errno;
            *failed = rules[i].path;
        }
        close(fd);
    }
    for (size_t i = 0; abi >= 4 && i < n_ports && err == 0; i++) {
        struct ll_net_port_attr np = {.allowed_access = LL_ACCESS_NET_BIND_TCP, .port = ports[i]};
        if (syscall(SYS_landlock_add_rule, rs, LL_RULE_NET_PORT, &np, 0) != 0) {
            err = errno;
        }
    }
    if (err == 0 && syscall(SYS_landlock_restrict_self, rs, 0) != 0) {
        err = errno;
    }
    close(rs);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}
