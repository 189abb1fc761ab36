// SPDX-License-Identifier: Apache-2.0
/* See privdrop.h. capset through the raw syscall: no libcap for three calls. */
#include "privdrop.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static bool kept(int cap, const int *keep, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (keep[i] == cap) {
            return true;
        }
    }
    return false;
}

int pd_keep_caps(const int *keep, size_t n, pv_err *e)
{
    int last = CAP_LAST_CAP;
    /* The kernel may know more capabilities than these headers: drop up to its last. */
    for (int c = CAP_LAST_CAP + 1; c < 64 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++) {
        last = c;
    }
    for (int c = 0; c <= last; c++) {
        if (!kept(c, keep, n) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) {
            return pv_err_sys(e, PV_ERR_IO, errno, "dropping capability %d", c);
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        return pv_err_sys(e, PV_ERR_IO, errno, "clearing the ambient capabilities");
    }
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};
    for (size_t i = 0; i < n; i++) {
        if (keep[i] >= 0 && keep[i] < 32 * _LINUX_CAPABILITY_U32S_3) {
            uint32_t bit = UINT32_C(1) << (keep[i] % 32);
            data[keep[i] / 32].permitted |= bit;
            data[keep[i] / 32].effective |= bit;
        }
    }
    if (syscall(SYS_capset, &hdr, data) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "capset");
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return pv_err_sys(e, PV_ERR_IO, errno, "no_new_privs");
    }
    return PV_OK;
}

/* path and every mount below it read-only (in this mount namespace only). /proc/sys is
 * part of the proc mount: it is bound onto itself first to be a mount of its own. */
static int readonly_tree(const char *path, bool bind)
{
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (bind && mount(path, path, NULL, MS_BIND | MS_REC, NULL) != 0) {
        return -1;
    }
    return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof(attr));
}

int pd_confine(const char *const *hide)
{
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        readonly_tree("/proc/sys", true) != 0 || readonly_tree("/sys", false) != 0) {
        return -1;
    }
    for (size_t i = 0; hide != NULL && hide[i] != NULL; i++) {
        struct stat st;
        if (stat(hide[i], &st) != 0) {
            continue; /* nothing there to reach */
        }
        int r = S_ISDIR(st.st_mode)
                    ? mount("pavise-hidden", hide[i], "tmpfs",
                            MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
                    : mount("/dev/null", hide[i], NULL, MS_BIND, NULL);
        if (r != 0) {
            return -1;
        }
    }
    return 0;
}
