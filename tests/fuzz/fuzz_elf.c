/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compartment's ELF reader on untrusted bytes (an app image's entry point or one of its
 * libraries): sb_elf_parse, then what the resolver does with what it returns — the needed
 * names checked, DT_RUNPATH expanded and confined to the image. Every string it returns must
 * lie inside the input and end there; a RUNPATH directory it accepts must stay in the image.
 *
 * The fuzz targets link the service's libraries, not the device runtime's: the reader is
 * compiled in here (it needs only libpavise), which also reaches its static helpers.
 */
#include "../../src/device/sb_elf.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *data, size_t size, const char *s)
{
    if (s == NULL) {
        return;
    }
    const uint8_t *p = (const uint8_t *)s;
    if (p < data || p >= data + size || memchr(p, '\0', (size_t)(data + size - p)) == NULL) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_elf_info info;
    pv_err e;
    if (sb_elf_parse(data, size, &info, &e) != PV_OK) {
        return 0;
    }
    inside(data, size, info.interp);
    inside(data, size, info.runpath);
    if (info.n_needed > SB_ELF_MAX_NEEDED) {
        abort();
    }
    for (size_t i = 0; i < info.n_needed; i++) {
        inside(data, size, info.needed[i]);
        if (valid_name(info.needed[i]) && strchr(info.needed[i], '/') != NULL) {
            abort();
        }
    }
    if (info.interp != NULL) {
        (void)valid_abs(info.interp);
    }
    const char *rp = info.runpath;
    for (unsigned k = 0; rp != NULL && *rp != '\0' && k < SB_ELF_MAX_RPATH; k++) {
        size_t n = strcspn(rp, ":");
        char rel[PATH_MAX];
        if (runpath_dir(rp, n, SB_APP_DIR "/bin", rel, sizeof(rel))) {
            /* relative to the image root, normalized: never absolute, never ".." */
            size_t len = strlen(rel);
            if (rel[0] == '/' || strcmp(rel, "..") == 0 || strncmp(rel, "../", 3) == 0 ||
                strstr(rel, "/../") != NULL || (len >= 3 && strcmp(rel + len - 3, "/..") == 0)) {
                abort();
            }
        }
        rp += n;
        if (*rp == ':') {
            rp++;
        }
    }
    return 0;
}
