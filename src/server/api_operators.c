/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Enrollment, the caller, tenants, roles and the audit log.
 *
 * Enrollment redeems a one-time code and issues a client certificate in one write
 * transaction, so a request that cannot get a certificate leaves the code unused. The
 * code names the operator. When an operator of that name already exists (a second
 * invitation, from another tenant, redeemed after the first; or a new code from
 * `pavise-server init` for an operator who lost their key) the code holder gets another
 * certificate for that operator: the code was made for that name by someone entitled to
 * make it, and holding it is the proof. A role the operator has been granted in the
 * tenant since the invitation was made is newer than the invitation and is kept.
 *
 * Role changes lock the tenant's row first (an UPDATE that changes nothing: a row lock on
 * PostgreSQL, and SQLite's write transactions are serial anyway), so two Administrators
 * demoting each other at once cannot both pass the "one Administrator stays" check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pavise/crypto.h"
#include "pavise/x509.h"

#include "api.h"
#include "ca.h"
#include "codes.h"
#include "tenant_ca.h"

#define NAME_MAX_BYTES 256 /* display names: 64 characters of up to 4 bytes */

static const char *valid_role(const char *s)
{
    static const char *const roles[] = {"Administrator", "Contributor", "Reader"};
    for (size_t i = 0; s != NULL && i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strcmp(s, roles[i]) == 0) {
            return roles[i];
        }
    }
    return NULL;
}

static const char *role_text(api_role r)
{
    return r == API_ROLE_ADMIN         ? "Administrator"
           : r == API_ROLE_CONTRIBUTOR ? "Contributor"
           : r == API_ROLE_READER      ? "Reader"
                                       : NULL;
}

/* Runs a statement; on failure sets the error response (api_store_fail). */
static int exec(api_ctx *c, const char *sql, const store_val *p, size_t n, store_rows **rows,
                int64_t *changes, const char *what)
{
    pv_err e;
    pv_err_clear(&e);
    int r = store_exec(c->db, sql, p, n, rows, changes, &e);
    return r == PV_OK ? PV_OK : api_store_fail(c, r, &e, what);
}

static int audit(api_ctx *c, const char *action, const char *target, json_t *detail)
{
    pv_err e;
    pv_err_clear(&e);
    int r = api_audit(c, action, target, detail, &e);
    return r == PV_OK ? PV_OK : api_store_fail(c, r, &e, NULL);
}

/* Pagination over a query of limit + 1 rows: keeps limit of them and returns the key
 * (column key_col of the last kept row) when there were more. */
static const char *page_next(const store_rows *rows, size_t limit, size_t key_col, size_t *keep)
{
    size_t n = store_rows_count(rows);
    *keep = n > limit ? limit : n;
    return n > limit ? store_rows_text(rows, limit - 1, key_col) : NULL;
}

/* ---- enrollment ---- */

static bool csr_problem(int code)
{
    return code == PV_ERR_FORMAT || code == PV_ERR_SIGNATURE || code == PV_ERR_UNSUPPORTED ||
           code == PV_ERR_TOO_LARGE || code == PV_ERR_INVALID_ARG;
}

int api_enroll(api_ctx *c)
{
    static const char *const fields[] = {"code", "csr", NULL};
    const char *code = NULL, *csr = NULL;
    codes_grant g;
    ca_issued iss;
    store_rows *rows = NULL;
    pv_key *key = NULL;
    pv_err e;
    char op_id[37] = "";
    bool new_operator = false;
    int r = PV_ERR_INTERNAL;

    memset(&g, 0, sizeof(g));
    memset(&iss, 0, sizeof(iss));
    pv_err_clear(&e);
    if ((r = api_body_fields(c, fields)) != PV_OK ||
        (r = api_body_string(c, "code", true, 64, &code)) != PV_OK ||
        (r = api_body_string(c, "csr", true, PV_CSR_MAX, &csr)) != PV_OK) {
        goto out;
    }
    /* The request's own faults first, before the code is looked at. */
    if ((r = pv_csr_verify(csr, strlen(csr), &key, &e)) != PV_OK) {
        r = api_fail(c, 400, "bad_request", "csr: %s", pv_err_msg(&e));
        goto out;
    }
    if (!codes_well_formed(code)) {
        r = api_fail(c, 401, "unauthenticated",
                     "enrollment code is not valid (unknown, used or expired)");
        goto out;
    }
    if ((r = api_tx_begin(c)) != PV_OK) {
        goto out;
    }
    r = codes_redeem(c->db, code, c->now, &g, &e);
    if (r == PV_ERR_NOT_FOUND || r == PV_ERR_FORMAT) {
        r = api_fail(c, 401, "unauthenticated",
                     "enrollment code is not valid (unknown, used or expired)");
        goto out;
    }
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    store_val pn[] = {SV_TEXT(g.user_name)};
    if ((r = exec(c, "SELECT id FROM operators WHERE name = $1", pn, 1, &rows, NULL, NULL)) !=
        PV_OK) {
        goto out;
    }
    if (store_rows_count(rows) == 1) {
        /* The name is taken. Only that operator, proving it with its current client
         * certificate, may accept a tenant's invitation in it: a tenant's code alone
         * never yields a certificate for an existing operator (whoever invites chooses
         * the name). A code the server made itself (`pavise-server operator invite`, no
         * tenant) may: that is the way back in after a lost or revoked key. A refusal
         * rolls back, so the code stays usable by the right person. */
        if (g.tenant_id[0] != '\0' && strcmp(c->operator_id, store_rows_text(rows, 0, 0)) != 0) {
            r = api_fail(c, 409, "conflict",
                         "the user name %s is already enrolled: accept the invitation from that "
                         "operator's login, or ask for an invitation under another name",
                         g.user_name);
            goto out;
        }
        snprintf(op_id, sizeof(op_id), "%s", store_rows_text(rows, 0, 0));
    } else {
        if ((r = api_new_id(c, op_id)) != PV_OK) {
            goto out;
        }
        store_val po[] = {SV_TEXT(op_id), SV_TEXT(g.user_name), SV_INT(c->now)};
        if ((r = exec(c, "INSERT INTO operators (id, name, created_at) VALUES ($1, $2, $3)", po, 3,
                      NULL, NULL, NULL)) != PV_OK) {
            goto out;
        }
        new_operator = true;
    }
    snprintf(c->operator_id, sizeof(c->operator_id), "%s", op_id);
    snprintf(c->operator_name, sizeof(c->operator_name), "%s", g.user_name);

    r = ca_issue_operator(c->srv->ca, csr, strlen(csr), g.user_name, c->srv->cfg.operator_cert_days,
                          &iss, &e);
    if (r != PV_OK) {
        if (csr_problem(r)) {
            r = api_fail(c, 400, "bad_request", "csr: %s", pv_err_msg(&e));
        } else {
            r = api_store_fail(c, r, &e, NULL);
        }
        goto out;
    }
    store_val pc[] = {SV_TEXT(iss.fingerprint), SV_TEXT(op_id), SV_TEXT(iss.serial),
                      SV_INT(iss.not_after), SV_INT(c->now)};
    if ((r = exec(c,
                  "INSERT INTO operator_certs (fingerprint, operator_id, serial, not_after, "
                  "created_at) VALUES ($1, $2, $3, $4, $5)",
                  pc, 5, NULL, NULL, NULL)) != PV_OK) {
        goto out;
    }
    json_t *detail = json_pack("{s:s,s:s,s:s,s:b}", "operator_id", op_id, "certificate_fingerprint",
                               iss.fingerprint, "serial", iss.serial, "new_operator", new_operator);
    if (g.tenant_id[0] != '\0') {
        store_val pr[] = {SV_TEXT(g.tenant_id), SV_TEXT(op_id), SV_TEXT(g.role), SV_INT(c->now)};
        r = exec(c,
                 "INSERT INTO roles (tenant_id, operator_id, role, created_at) "
                 "VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, operator_id) DO NOTHING",
                 pr, 4, NULL, NULL, NULL);
        if (r != PV_OK) {
            json_decref(detail);
            goto out;
        }
        c->tenant_id = g.tenant_id;
        json_object_set_new(detail, "role", json_string(g.role));
    }
    if ((r = audit(c, "operator.enroll", g.user_name, detail)) != PV_OK ||
        (r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 201,
               json_pack("{s:{s:s,s:s},s:s,s:s,s:o}", "operator", "id", op_id, "name", g.user_name,
                         "certificate", iss.cert_pem, "ca_certificate", ca_cert_pem(c->srv->ca),
                         "expires_at", api_time(iss.not_after)));
out:
    if (c->tenant_id == g.tenant_id) {
        c->tenant_id = NULL; /* g does not outlive this call */
    }
    store_rows_free(rows);
    pv_key_free(key);
    ca_issued_clear(&iss);
    return r;
}

/* ---- the caller ---- */

int api_me(api_ctx *c)
{
    store_rows *rows = NULL;
    json_t *roles = json_array();
    int r = PV_ERR_INTERNAL;

    store_val p[] = {SV_TEXT(c->operator_id)};
    if ((r = exec(c,
                  "SELECT r.tenant_id, t.name, r.role FROM roles r "
                  "JOIN tenants t ON t.id = r.tenant_id WHERE r.operator_id = $1 "
                  "ORDER BY r.tenant_id",
                  p, 1, &rows, NULL, NULL)) != PV_OK) {
        goto out;
    }
    for (size_t i = 0; roles != NULL && i < store_rows_count(rows); i++) {
        json_array_append_new(roles,
                              json_pack("{s:s,s:s,s:s}", "tenant_id", store_rows_text(rows, i, 0),
                                        "tenant_name", store_rows_text(rows, i, 1), "role",
                                        store_rows_text(rows, i, 2)));
    }
    r = api_ok(
        c, 200,
        json_pack("{s:s,s:s,s:O}", "id", c->operator_id, "name", c->operator_name, "roles", roles));
out:
    json_decref(roles);
    store_rows_free(rows);
    return r;
}

/* ---- tenants ---- */

static json_t *tenant_json(const char *id, const char *name, int64_t created_at, const char *role)
{
    return json_pack("{s:s,s:s,s:o,s:s}", "id", id, "name", name, "created_at",
                     api_time(created_at), "role", role);
}

int api_tenant_create(api_ctx *c)
{
    static const char *const fields[] = {"name", NULL};
    const char *name = NULL;
    char id[37] = "";
    int r = PV_ERR_INTERNAL;

    if ((r = api_body_fields(c, fields)) != PV_OK ||
        (r = api_body_string(c, "name", true, NAME_MAX_BYTES, &name)) != PV_OK) {
        return r;
    }
    if (!api_valid_display_name(name)) {
        return api_fail(c, 400, "bad_request",
                        "body: field 'name': 1 to 64 printable characters, not only spaces");
    }
    if ((r = api_new_id(c, id)) != PV_OK) {
        return r;
    }
    if ((r = api_tx_begin(c)) != PV_OK) {
        return r;
    }
    store_val pt[] = {SV_TEXT(id), SV_TEXT(name), SV_INT(c->now), SV_TEXT(c->operator_id)};
    store_val pr[] = {SV_TEXT(id), SV_TEXT(c->operator_id), SV_INT(c->now)};
    if ((r = exec(c,
                  "INSERT INTO tenants (id, name, created_at, created_by) VALUES ($1, $2, $3, $4)",
                  pt, 4, NULL, NULL, NULL)) != PV_OK ||
        (r = exec(c,
                  "INSERT INTO roles (tenant_id, operator_id, role, created_at) "
                  "VALUES ($1, $2, 'Administrator', $3)",
                  pr, 3, NULL, NULL, NULL)) != PV_OK) {
        return r;
    }
    /* The tenant's CA, in the same transaction: a tenant never exists without one. */
    tenant_ca_info ca;
    pv_err e;
    pv_err_clear(&e);
    r = tenant_ca_create(c->db, ca_tenant_kek(c->srv->ca), id, c->now, &ca, &e);
    if (r != PV_OK) {
        return api_store_fail(c, r, &e, NULL);
    }
    c->tenant_id = id; /* the audit row belongs to the new tenant */
    r = audit(c, "tenant.create", id,
              json_pack("{s:s,s:s,s:s}", "name", name, "ca_certificate_id", ca.id, "ca_fingerprint",
                        ca.fingerprint));
    tenant_ca_info_clear(&ca);
    if (r == PV_OK) {
        r = api_tx_commit(c);
    }
    if (r == PV_OK) {
        r = api_ok(c, 201, tenant_json(id, name, c->now, "Administrator"));
    }
    c->tenant_id = NULL;
    return r;
}

int api_tenant_list(api_ctx *c)
{
    size_t limit = 0, keep = 0;
    const char *after = NULL;
    const char *name = api_query(c, "name");
    store_rows *rows = NULL;
    int r = PV_ERR_INTERNAL;

    if ((r = api_page(c, &limit, &after)) != PV_OK) {
        return r;
    }
    if (name != NULL && !api_valid_display_name(name)) {
        return api_fail(c, 400, "bad_request",
                        "query parameter 'name': 1 to 64 printable characters");
    }
    store_val p[] = {SV_TEXT(c->operator_id), SV_TEXT(after), SV_INT(limit + 1),
                     SV_TEXT(name != NULL ? name : "")};
    if (name != NULL) {
        r = exec(c,
                 "SELECT t.id, t.name, t.created_at, r.role FROM roles r "
                 "JOIN tenants t ON t.id = r.tenant_id "
                 "WHERE r.operator_id = $1 AND t.id > $2 AND t.name = $4 ORDER BY t.id LIMIT $3",
                 p, 4, &rows, NULL, NULL);
    } else {
        r = exec(c,
                 "SELECT t.id, t.name, t.created_at, r.role FROM roles r "
                 "JOIN tenants t ON t.id = r.tenant_id "
                 "WHERE r.operator_id = $1 AND t.id > $2 ORDER BY t.id LIMIT $3",
                 p, 3, &rows, NULL, NULL);
    }
    if (r != PV_OK) {
        goto out;
    }
    const char *next = page_next(rows, limit, 0, &keep);
    json_t *items = json_array();
    for (size_t i = 0; items != NULL && i < keep; i++) {
        json_array_append_new(items,
                              tenant_json(store_rows_text(rows, i, 0), store_rows_text(rows, i, 1),
                                          store_rows_int(rows, i, 2), store_rows_text(rows, i, 3)));
    }
    r = api_page_done(c, items, next);
out:
    store_rows_free(rows);
    return r;
}

int api_tenant_show(api_ctx *c)
{
    store_rows *rows = NULL;
    int r = PV_ERR_INTERNAL;
    store_val p[] = {SV_TEXT(c->tenant_id)};
    if ((r = exec(c, "SELECT name, created_at FROM tenants WHERE id = $1", p, 1, &rows, NULL,
                  NULL)) != PV_OK) {
        goto out;
    }
    if (store_rows_count(rows) != 1) {
        r = api_fail(c, 404, "not_found", "tenant %s not found", c->tenant_id);
        goto out;
    }
    r = api_ok(c, 200,
               tenant_json(c->tenant_id, store_rows_text(rows, 0, 0), store_rows_int(rows, 0, 1),
                           role_text(c->role)));
out:
    store_rows_free(rows);
    return r;
}

/* ---- roles ---- */

int api_role_list(api_ctx *c)
{
    size_t limit = 0, keep = 0;
    const char *after = NULL;
    store_rows *rows = NULL;
    int r = PV_ERR_INTERNAL;

    if ((r = api_page(c, &limit, &after)) != PV_OK) {
        return r;
    }
    store_val p[] = {SV_TEXT(c->tenant_id), SV_TEXT(after), SV_INT(limit + 1)};
    if ((r = exec(c,
                  "SELECT o.name, r.role, r.created_at FROM roles r "
                  "JOIN operators o ON o.id = r.operator_id "
                  "WHERE r.tenant_id = $1 AND o.name > $2 ORDER BY o.name LIMIT $3",
                  p, 3, &rows, NULL, NULL)) != PV_OK) {
        goto out;
    }
    const char *next = page_next(rows, limit, 0, &keep);
    json_t *items = json_array();
    for (size_t i = 0; items != NULL && i < keep; i++) {
        json_array_append_new(items, json_pack("{s:s,s:s,s:o}", "user", store_rows_text(rows, i, 0),
                                               "role", store_rows_text(rows, i, 1), "created_at",
                                               api_time(store_rows_int(rows, i, 2))));
    }
    r = api_page_done(c, items, next);
out:
    store_rows_free(rows);
    return r;
}

/* Serialises role changes in one tenant (see the top of this file). */
static int lock_tenant(api_ctx *c)
{
    store_val p[] = {SV_TEXT(c->tenant_id)};
    return exec(c, "UPDATE tenants SET name = name WHERE id = $1", p, 1, NULL, NULL, NULL);
}

/* After a change: 409 when the tenant has no Administrator left (the caller's
 * transaction is then rolled back by the dispatcher). */
static int check_admin_left(api_ctx *c, const char *user)
{
    store_rows *rows = NULL;
    store_val p[] = {SV_TEXT(c->tenant_id)};
    int r = exec(c, "SELECT COUNT(*) FROM roles WHERE tenant_id = $1 AND role = 'Administrator'", p,
                 1, &rows, NULL, NULL);
    if (r == PV_OK && store_rows_int(rows, 0, 0) < 1) {
        r = api_fail(c, 409, "conflict",
                     "this would leave tenant %s without an Administrator: make another "
                     "operator Administrator before changing %s",
                     c->tenant_id, user);
    }
    store_rows_free(rows);
    return r;
}

static int invite(api_ctx *c, const char *user, const char *role)
{
    char code[CODES_TEXT_LEN + 1] = "";
    int64_t expires = c->now + c->srv->cfg.invite_ttl;
    pv_err e;
    int r = PV_ERR_INTERNAL;

    pv_err_clear(&e);
    r = codes_create(c->db, user, c->tenant_id, role, c->operator_id, c->now,
                     c->srv->cfg.invite_ttl, code, &e);
    if (r != PV_OK) {
        r = api_store_fail(c, r, &e, NULL);
        goto out;
    }
    /* The audit row says who was invited to what, never the code. */
    if ((r = audit(c, "role.invite", user,
                   json_pack("{s:s,s:o}", "role", role, "expires_at", api_time(expires)))) !=
            PV_OK ||
        (r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 201,
               json_pack("{s:s,s:s,s:s,s:s,s:o}", "user", user, "role", role, "tenant_id",
                         c->tenant_id, "enrollment_code", code, "expires_at", api_time(expires)));
out:
    pv_wipe(code, sizeof(code));
    return r;
}

int api_role_add(api_ctx *c)
{
    static const char *const fields[] = {"user", "role", NULL};
    const char *user = NULL, *role_in = NULL, *role = NULL;
    store_rows *rows = NULL;
    int r = PV_ERR_INTERNAL;

    if ((r = api_body_fields(c, fields)) != PV_OK ||
        (r = api_body_string(c, "user", true, 64, &user)) != PV_OK ||
        (r = api_body_string(c, "role", true, 16, &role_in)) != PV_OK) {
        goto out;
    }
    if (!api_valid_user_name(user)) {
        r = api_fail(c, 400, "bad_request", "body: field 'user': 1 to 64 of A-Z a-z 0-9 . _ @ -");
        goto out;
    }
    if ((role = valid_role(role_in)) == NULL) {
        r = api_fail(c, 400, "bad_request",
                     "body: field 'role': expected Administrator, Contributor or Reader");
        goto out;
    }
    if ((r = api_tx_begin(c)) != PV_OK || (r = lock_tenant(c)) != PV_OK) {
        goto out;
    }
    store_val pu[] = {SV_TEXT(user), SV_TEXT(c->tenant_id)};
    if ((r = exec(c,
                  "SELECT o.id, r.role FROM operators o "
                  "LEFT JOIN roles r ON r.operator_id = o.id AND r.tenant_id = $2 "
                  "WHERE o.name = $1",
                  pu, 2, &rows, NULL, NULL)) != PV_OK) {
        goto out;
    }
    /* Only a member of this tenant has its role changed at once. Anyone else -- a new
     * name, or an operator enrolled elsewhere -- gets an invitation code, redeemed by
     * the person it is given to: operator names are chosen by whoever invites first,
     * so a name alone must never carry a role into this tenant. */
    if (store_rows_count(rows) == 0 || store_rows_is_null(rows, 0, 1)) {
        r = invite(c, user, role);
        goto out;
    }
    const char *op_id = store_rows_text(rows, 0, 0);
    const char *previous = store_rows_text(rows, 0, 1);
    store_val pr[] = {SV_TEXT(c->tenant_id), SV_TEXT(op_id), SV_TEXT(role), SV_INT(c->now)};
    if ((r = exec(c,
                  "INSERT INTO roles (tenant_id, operator_id, role, created_at) "
                  "VALUES ($1, $2, $3, $4) "
                  "ON CONFLICT (tenant_id, operator_id) DO UPDATE SET role = excluded.role",
                  pr, 4, NULL, NULL, NULL)) != PV_OK ||
        (r = check_admin_left(c, user)) != PV_OK) {
        goto out;
    }
    json_t *detail = json_pack("{s:s,s:s?}", "role", role, "previous_role", previous);
    if ((r = audit(c, "role.add", user, detail)) != PV_OK || (r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 200,
               json_pack("{s:s,s:s,s:s}", "user", user, "role", role, "tenant_id", c->tenant_id));
out:
    store_rows_free(rows);
    return r;
}

int api_role_delete(api_ctx *c)
{
    const char *user = c->params[1];
    store_rows *rows = NULL;
    int r = PV_ERR_INTERNAL;

    if ((r = api_tx_begin(c)) != PV_OK || (r = lock_tenant(c)) != PV_OK) {
        goto out;
    }
    store_val pu[] = {SV_TEXT(c->tenant_id), SV_TEXT(user)};
    if ((r = exec(c,
                  "SELECT o.id, r.role FROM operators o "
                  "JOIN roles r ON r.operator_id = o.id AND r.tenant_id = $1 WHERE o.name = $2",
                  pu, 2, &rows, NULL, NULL)) != PV_OK) {
        goto out;
    }
    /* Pending invitations for this user in this tenant end too, so an invitation sent
     * by mistake can be taken back before it is used. */
    int64_t cancelled = 0;
    store_val pc[] = {SV_TEXT(c->tenant_id), SV_TEXT(user), SV_INT(c->now)};
    if ((r = exec(c,
                  "UPDATE enrollment_codes SET expires_at = $3 "
                  "WHERE tenant_id = $1 AND user_name = $2 AND used_at IS NULL AND expires_at > $3",
                  pc, 3, NULL, &cancelled, NULL)) != PV_OK) {
        goto out;
    }
    bool member = store_rows_count(rows) == 1;
    if (!member && cancelled == 0) {
        r = api_fail(c, 404, "not_found",
                     "user %s has no role and no pending invitation in tenant %s", user,
                     c->tenant_id);
        goto out;
    }
    if (member) {
        store_val pd[] = {SV_TEXT(c->tenant_id), SV_TEXT(store_rows_text(rows, 0, 0))};
        if ((r = exec(c, "DELETE FROM roles WHERE tenant_id = $1 AND operator_id = $2", pd, 2, NULL,
                      NULL, NULL)) != PV_OK ||
            (r = check_admin_left(c, user)) != PV_OK) {
            goto out;
        }
    }
    json_t *detail = json_pack("{s:s?,s:I}", "role", member ? store_rows_text(rows, 0, 1) : NULL,
                               "invitations_cancelled", (json_int_t)cancelled);
    if ((r = audit(c, "role.delete", user, detail)) != PV_OK || (r = api_tx_commit(c)) != PV_OK) {
        goto out;
    }
    r = api_ok(c, 200,
               json_pack("{s:s,s:s,s:b,s:I}", "user", user, "tenant_id", c->tenant_id, "deleted", 1,
                         "invitations_cancelled", (json_int_t)cancelled));
out:
    store_rows_free(rows);
    return r;
}

/* ---- audit ---- */

static bool parse_seq(const char *s, int64_t *out)
{
    int64_t v = 0;
    size_t n = strlen(s);
    if (n == 0 || n > 18 || (s[0] == '0' && n > 1)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int api_audit_list(api_ctx *c)
{
    size_t limit = 0, keep = 0;
    const char *after = NULL;
    int64_t after_seq = 0;
    store_rows *rows = NULL;
    int r = PV_ERR_INTERNAL;

    if ((r = api_page(c, &limit, &after)) != PV_OK) {
        return r;
    }
    if (after[0] != '\0' && !parse_seq(after, &after_seq)) {
        return api_fail(c, 400, "bad_request",
                        "query parameter 'continuation_token' is not a token of this list");
    }
    store_val p[] = {SV_TEXT(c->tenant_id), SV_INT(after_seq), SV_INT(limit + 1)};
    if ((r = exec(c,
                  "SELECT seq, at, operator, action, target, detail FROM audit "
                  "WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                  p, 3, &rows, NULL, NULL)) != PV_OK) {
        goto out;
    }
    const char *next = page_next(rows, limit, 0, &keep);
    json_t *items = json_array();
    for (size_t i = 0; items != NULL && i < keep; i++) {
        const char *text = store_rows_text(rows, i, 5);
        json_t *detail = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (!json_is_object(detail)) {
            json_decref(detail);
            detail = json_object();
        }
        json_array_append_new(items, json_pack("{s:I,s:o,s:s,s:s,s:s,s:o}", "seq",
                                               (json_int_t)store_rows_int(rows, i, 0), "time",
                                               api_time(store_rows_int(rows, i, 1)), "operator",
                                               store_rows_text(rows, i, 2), "action",
                                               store_rows_text(rows, i, 3), "target",
                                               store_rows_text(rows, i, 4), "detail", detail));
    }
    r = api_page_done(c, items, next);
out:
    store_rows_free(rows);
    return r;
}
