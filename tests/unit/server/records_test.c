/* SPDX-License-Identifier: Apache-2.0 */
/* Manufacturing records on the service (records.c), on SQLite and PostgreSQL. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "pavise/mfgrec.h"
#include "pavise/platform.h"
#include "pavise/rot.h"

#include "records.h"
#include "servertest.h"

#define YEAR ((int64_t)365 * 24 * 3600)

static const char *backend;

typedef struct factory {
    char *dir;
    pv_key *key;
    pv_chain *chain;
} factory;

typedef struct fixture {
    st_env env;
    int64_t now;
    factory good;
    pv_key *identity;
    pv_key *attestation;
} fixture;

/* A factory: a root CA (dir/root.crt), an intermediate and a signing leaf valid over
 * [not_before, not_after]. */
static void factory_make(factory *f, int64_t not_before, int64_t not_after)
{
    f->dir = tu_mkdtemp("factory");
    tu_make_chain(f->dir, not_before, not_after, &f->key, &f->chain, NULL);
}

static void factory_free(factory *f)
{
    tu_rmtree(f->dir);
    free(f->dir);
    pv_key_free(f->key);
    pv_chain_free(f->chain);
}

static char *read_text(const char *dir, const char *name, size_t *len)
{
    char *p = tu_path(dir, name);
    char *s = (char *)tu_read(p, len);
    free(p);
    return s;
}

static int trust(fixture *x, const factory *f, char fp[65], pv_err *e)
{
    size_t n = 0;
    char *pem = read_text(f->dir, "root.crt", &n);
    int r = records_add_factory(x->env.db, pem, n, x->now, fp, e);
    free(pem);
    return r;
}

/* A software record for x->identity signed by f. */
static pv_buf *record(const fixture *x, const factory *f, int64_t manufactured_at,
                      char id[PV_DEVICE_ID_HEX_LEN + 1])
{
    pv_mfgrec r;
    pv_err e = {0};
    memset(&r, 0, sizeof(r));
    r.version = PV_MFGREC_VERSION;
    assert_int_equal(pv_device_id_of_key(x->identity, r.device_id), PV_OK);
    r.rot_kind = PV_ROT_SOFTWARE;
    r.identity_key = x->identity;
    r.attestation_key = x->attestation;
    memset(r.trust_anchor, 0x5a, sizeof(r.trust_anchor));
    r.manufactured_at = manufactured_at;
    pv_buf *b = pv_buf_new(PV_MFGREC_MAX_SIZE);
    assert_non_null(b);
    if (pv_mfgrec_sign(&r, f->key, f->chain, b, &e) != PV_OK) {
        fail_msg("sign: %s", pv_err_msg(&e));
    }
    memcpy(id, r.device_id, sizeof(r.device_id));
    return b;
}

static int64_t count_records(fixture *x)
{
    store_rows *rows = NULL;
    pv_err e = {0};
    assert_int_equal(store_exec(x->env.db, "SELECT COUNT(*) FROM manufacturing_records", NULL, 0,
                                &rows, NULL, &e),
                     PV_OK);
    int64_t n = store_rows_int(rows, 0, 0);
    store_rows_free(rows);
    return n;
}

static int setup(void **state)
{
    fixture *x = calloc(1, sizeof(*x));
    pv_err e = {0};
    assert_non_null(x);
    st_setup(&x->env, backend);
    x->now = pv_time_now();
    factory_make(&x->good, x->now - 3600, x->now + YEAR);
    assert_int_equal(pv_key_generate(&x->identity, &e), PV_OK);
    assert_int_equal(pv_key_generate(&x->attestation, &e), PV_OK);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fixture *x = *state;
    st_teardown(&x->env);
    factory_free(&x->good);
    pv_key_free(x->identity);
    pv_key_free(x->attestation);
    free(x);
    return 0;
}

static void test_add_factory(void **state)
{
    fixture *x = *state;
    pv_err e = {0};
    char fp[65] = "", again[65] = "x";
    assert_int_equal(trust(x, &x->good, fp, &e), PV_OK);
    assert_int_equal(strlen(fp), 64);

    store_rows *rows = NULL;
    assert_int_equal(store_exec(x->env.db, "SELECT fingerprint, subject, cert_pem FROM factories",
                                NULL, 0, &rows, NULL, &e),
                     PV_OK);
    assert_int_equal(store_rows_count(rows), 1);
    assert_string_equal(store_rows_text(rows, 0, 0), fp);
    assert_non_null(strstr(store_rows_text(rows, 0, 2), "-----BEGIN CERTIFICATE-----"));
    store_rows_free(rows);

    /* The same certificate again. */
    assert_int_equal(trust(x, &x->good, again, &e), PV_ERR_EXISTS);
    assert_string_equal(again, "");
    assert_non_null(strstr(pv_err_msg(&e), "already trusted"));

    /* The signing leaf is not a CA. */
    pv_buf *pem = pv_buf_new(PV_PEM_MAX_FILE);
    pv_chain *leaf = pv_chain_new();
    assert_int_equal(pv_chain_add(leaf, pv_chain_get(x->good.chain, 0)), PV_OK);
    assert_int_equal(pv_chain_to_pem(leaf, pem), PV_OK);
    assert_int_equal(records_add_factory(x->env.db, (const char *)pv_buf_data(pem), pv_buf_len(pem),
                                         x->now, again, &e),
                     PV_ERR_FORMAT);
    assert_non_null(strstr(pv_err_msg(&e), "not a CA"));
    pv_chain_free(leaf);

    /* Two certificates in one file, and no certificate at all. */
    pv_buf_reset(pem);
    assert_int_equal(pv_chain_to_pem(x->good.chain, pem), PV_OK);
    assert_int_equal(records_add_factory(x->env.db, (const char *)pv_buf_data(pem), pv_buf_len(pem),
                                         x->now, again, &e),
                     PV_ERR_FORMAT);
    assert_int_equal(records_add_factory(x->env.db, "hello", 5, x->now, again, &e), PV_ERR_FORMAT);
    pv_buf_free(pem);
}

static void test_import(void **state)
{
    fixture *x = *state;
    pv_err e = {0};
    char fp[65], id[PV_DEVICE_ID_HEX_LEN + 1], got[PV_DEVICE_ID_HEX_LEN + 1];
    assert_int_equal(trust(x, &x->good, fp, &e), PV_OK);
    pv_buf *b = record(x, &x->good, 1700000000, id);
    if (records_import(x->env.db, pv_buf_data(b), pv_buf_len(b), x->now, got, &e) != PV_OK) {
        fail_msg("import: %s", pv_err_msg(&e));
    }
    assert_string_equal(got, id);

    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(id)};
    assert_int_equal(store_exec(x->env.db,
                                "SELECT rot_kind, manufactured_at, factory_fingerprint, record "
                                "FROM manufacturing_records WHERE device_id = $1",
                                p, 1, &rows, NULL, &e),
                     PV_OK);
    assert_int_equal(store_rows_count(rows), 1);
    assert_string_equal(store_rows_text(rows, 0, 0), "software");
    assert_int_equal(store_rows_int(rows, 0, 1), 1700000000);
    assert_string_equal(store_rows_text(rows, 0, 2), fp);
    size_t len = 0;
    const uint8_t *blob = store_rows_blob(rows, 0, 3, &len);
    assert_int_equal(len, pv_buf_len(b));
    assert_memory_equal(blob, pv_buf_data(b), len);
    store_rows_free(rows);
    pv_buf_free(b);
}

static void test_no_factory(void **state)
{
    fixture *x = *state;
    pv_err e = {0};
    char id[PV_DEVICE_ID_HEX_LEN + 1], got[PV_DEVICE_ID_HEX_LEN + 1];
    pv_buf *b = record(x, &x->good, 1700000000, id);
    assert_int_equal(records_import(x->env.db, pv_buf_data(b), pv_buf_len(b), x->now, got, &e),
                     PV_ERR_UNTRUSTED);
    assert_non_null(strstr(pv_err_msg(&e), "no factory is trusted"));
    assert_string_equal(got, "");
    assert_int_equal(count_records(x), 0);
    pv_buf_free(b);
}

static void test_untrusted_factory(void **state)
{
    fixture *x = *state;
    pv_err e = {0};
    factory other;
    char fp[65], id[PV_DEVICE_ID_HEX_LEN + 1], got[PV_DEVICE_ID_HEX_LEN + 1];
    factory_make(&other, x->now - 3600, x->now + YEAR);
    assert_int_equal(trust(x, &x->good, fp, &e), PV_OK);
    pv_buf *b = record(x, &other, 1700000000, id);
    assert_int_equal(records_import(x->env.db, pv_buf_data(b), pv_buf_len(b), x->now, got, &e),
                     PV_ERR_UNTRUSTED);
    assert_int_equal(count_records(x), 0);

    /* Trusting the other factory too makes it verify (each factory is tried). */
    assert_int_equal(trust(x, &other, fp, &e), PV_OK);
    assert_int_equal(records_import(x->env.db, pv_buf_data(b), pv_buf_len(b), x->now, got, &e),
                     PV_OK);
    assert_string_equal(got, id);
    assert_int_equal(count_records(x), 1);
    pv_buf_free(b);
    factory_free(&other);
}

static void test_tampered(void **state)
{
    fixture *x = *state;
    pv_err e = {0};
    char fp[65], id[PV_DEVICE_ID_HEX_LEN + 1], got[PV_DEVICE_ID_HEX_LEN + 1];
    assert_int_equal(trust(x, &x->good, fp, &e), PV_OK);
    pv_buf *b = record(x, &x->good, 1700000000, id);
    uint8_t *p = pv_buf_mutable_data(b);
    size_t n = pv_buf_len(b);

    /* The trust anchor (32 bytes of 0x5a in the signed payload) changes by one bit. */
    uint8_t anchor[32];
    memset(anchor, 0x5a, sizeof(anchor));
    uint8_t *at = memmem(p, n, anchor, sizeof(anchor));
    assert_non_null(at);
    at[7] ^= 0x01;
    int r = records_import(x->env.db, p, n, x->now, got, &e);
    assert_int_equal(r, PV_ERR_SIGNATURE);
    assert_int_equal(count_records(x), 0);
    at[7] ^= 0x01;

    /* Cut short. */
    assert_int_not_equal(records_import(x->env.db, p, n - 10, x->now, got, &e), PV_OK);
    /* Too large to be a record. */
    assert_int_equal(records_import(x->env.db, p, PV_MFGREC_MAX_SIZE + 1, x->now, got, &e),
                     PV_ERR_TOO_LARGE);
    assert_int_equal(count_records(x), 0);
    pv_buf_free(b);
}

static void test_expired_factory_cert(void **state)
{
    fixture *x = *state;
    pv_err e = {0};
    factory old;
    char fp[65], id[PV_DEVICE_ID_HEX_LEN + 1], got[PV_DEVICE_ID_HEX_LEN + 1];
    /* The factory's signing certificate expired a year ago. */
    factory_make(&old, x->now - 2 * YEAR, x->now - YEAR);
    assert_int_equal(trust(x, &old, fp, &e), PV_OK);
    pv_buf *b = record(x, &old, 1700000000, id);
    assert_int_equal(records_import(x->env.db, pv_buf_data(b), pv_buf_len(b), x->now, got, &e),
                     PV_ERR_EXPIRED);
    assert_int_equal(count_records(x), 0);
    /* It verified while the certificate was valid. */
    assert_int_equal(
        records_import(x->env.db, pv_buf_data(b), pv_buf_len(b), x->now - YEAR - YEAR / 2, got, &e),
        PV_OK);
    pv_buf_free(b);
    factory_free(&old);
}

static void test_duplicate_keeps_first(void **state)
{
    fixture *x = *state;
    pv_err e = {0};
    char fp[65], id1[PV_DEVICE_ID_HEX_LEN + 1], id2[PV_DEVICE_ID_HEX_LEN + 1];
    char got[PV_DEVICE_ID_HEX_LEN + 1];
    assert_int_equal(trust(x, &x->good, fp, &e), PV_OK);
    pv_buf *first = record(x, &x->good, 1700000000, id1);
    pv_buf *second = record(x, &x->good, 1800000000, id2);
    assert_string_equal(id1, id2);
    assert_int_equal(
        records_import(x->env.db, pv_buf_data(first), pv_buf_len(first), x->now, got, &e), PV_OK);
    assert_int_equal(
        records_import(x->env.db, pv_buf_data(second), pv_buf_len(second), x->now, got, &e), PV_OK);
    assert_string_equal(got, id1);
    assert_int_equal(count_records(x), 1);

    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(id1)};
    assert_int_equal(store_exec(x->env.db,
                                "SELECT manufactured_at, record FROM manufacturing_records "
                                "WHERE device_id = $1",
                                p, 1, &rows, NULL, &e),
                     PV_OK);
    assert_int_equal(store_rows_int(rows, 0, 0), 1700000000);
    size_t len = 0;
    const uint8_t *blob = store_rows_blob(rows, 0, 1, &len);
    assert_int_equal(len, pv_buf_len(first));
    assert_memory_equal(blob, pv_buf_data(first), len);
    store_rows_free(rows);
    pv_buf_free(first);
    pv_buf_free(second);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_factory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_factory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untrusted_factory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_factory_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_keeps_first, setup, teardown),
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof(st_backends) / sizeof(st_backends[0]); i++) {
        backend = st_backends[i];
        failed += cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    }
    return failed;
}
