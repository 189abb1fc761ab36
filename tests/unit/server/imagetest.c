/* SPDX-License-Identifier: Apache-2.0 */
#include "imagetest.h"

#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pavise/base64.h"
#include "pavise/uuid.h"

#include "images.h"

void it_signer_new(it_signer *s, int64_t not_before, int64_t not_after)
{
    memset(s, 0, sizeof(*s));
    s->dir = tu_mkdtemp("signer");
    tu_make_chain(s->dir, not_before, not_after, &s->key, &s->chain, NULL);
}

void it_signer_free(it_signer *s)
{
    if (s->dir != NULL) {
        tu_rmtree(s->dir);
    }
    free(s->dir);
    pv_key_free(s->key);
    pv_chain_free(s->chain);
    memset(s, 0, sizeof(*s));
}

void it_add_root(store *db, const it_signer *s, bool development)
{
    char fp[65];
    pv_err e = {0};
    size_t n = 0;
    char *path = tu_path(s->dir, "root.crt");
    char *pem = (char *)tu_read(path, &n);
    if (images_add_root(db, pem, n, development, 1700000000, fp, &e) != PV_OK) {
        fail_msg("image root: %s", pv_err_msg(&e));
    }
    free(pem);
    free(path);
}

char *it_package(it_signer *s, pv_image_type type, char image_id[37])
{
    pv_manifest m;
    pv_err e = {0};
    char name[64];
    memset(&m, 0, sizeof(m));
    assert_int_equal(pv_uuid_parse("6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21", m.component_id), 0);
    assert_int_equal(pv_uuid_generate(m.image_id), 0);
    m.type = type;
    m.name = strdup(type == PV_IMAGE_OS ? "Pavise OS" : "hello");
    m.version = strdup("1.2.3");
    m.security_counter = 7;
    m.build_time = 1700000000;
    m.entry_point = strdup(type == PV_IMAGE_OS ? "/bin/runtime" : "/bin/app");
    snprintf(name, sizeof(name), "p%u.payload", ++s->serial);
    char *payload = tu_path(s->dir, name);
    tu_write(payload, "pretend tar", 11, 0644);
    snprintf(name, sizeof(name), "p%u.imagepackage", s->serial);
    char *pkg = tu_path(s->dir, name);
    int fd = open(payload, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    if (pv_imgpkg_create(pkg, &m, fd, s->key, s->chain, false, &e) != PV_OK) {
        fail_msg("package: %s", pv_err_msg(&e));
    }
    close(fd);
    if (image_id != NULL) {
        pv_uuid_format(m.image_id, image_id);
    }
    pv_manifest_free(&m);
    free(payload);
    return pkg;
}

char *it_head_b64(it_signer *s, pv_image_type type, uint8_t **head, size_t *len, char image_id[37])
{
    pv_imgpkg *pkg = NULL;
    pv_err e = {0};
    uint8_t *h = NULL;
    size_t n = 0;
    char *path = it_package(s, type, image_id);
    assert_int_equal(pv_imgpkg_open(path, &pkg, &e), PV_OK);
    assert_int_equal(pv_imgpkg_head(pkg, &h, &n, &e), PV_OK);
    pv_imgpkg_free(pkg);
    free(path);
    char *b64 = pv_base64_encode(h, n, PV_BASE64_STD);
    assert_non_null(b64);
    if (head != NULL) {
        *head = h;
        *len = n;
    } else {
        free(h);
    }
    return b64;
}

char *it_body(const uint8_t *head, size_t len)
{
    char *b64 = pv_base64_encode(head, len, PV_BASE64_STD);
    assert_non_null(b64);
    size_t n = strlen(b64) + 32;
    char *body = malloc(n);
    assert_non_null(body);
    snprintf(body, n, "{\"package\": \"%s\"}", b64);
    free(b64);
    return body;
}
