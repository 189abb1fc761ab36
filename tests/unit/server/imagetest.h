/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image packages for the server's tests: a signer (root CA, intermediate, code-signing
 * leaf), fresh packages signed by it, and their heads as the API receives them.
 */
#ifndef PAVISE_TEST_IMAGETEST_H
#define PAVISE_TEST_IMAGETEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pavise/imgpkg.h"

#include "store.h"

typedef struct it_signer {
    char *dir;       /* root.crt, chain.pem, leaf.key and the packages made */
    pv_key *key;     /* the leaf's */
    pv_chain *chain; /* leaf, intermediate */
    unsigned serial;
} it_signer;

/* A signer whose leaf is valid [not_before, not_after]. Fails the test on error. */
void it_signer_new(it_signer *s, int64_t not_before, int64_t not_after);
void it_signer_free(it_signer *s);

/* Trusts s's root as an image root. */
void it_add_root(store *db, const it_signer *s, bool development);

/* Makes a package of type with a fresh image ID and returns its path (caller frees);
 * image_id (may be NULL) receives the ID. */
char *it_package(it_signer *s, pv_image_type type, char image_id[37]);

/* The head of a fresh package: raw bytes in *head (caller frees) and *len, and the
 * returned base64 (caller frees). head may be NULL. */
char *it_head_b64(it_signer *s, pv_image_type type, uint8_t **head, size_t *len, char image_id[37]);

/* {"package": "<base64 of head>"} (caller frees). */
char *it_body(const uint8_t *head, size_t len);

#endif
