/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TPM 2.0 root-of-trust backend, on tpm2-tss ESAPI.
 *
 * What lives where is in rot_tpm.h. Keys are created inside the TPM under a storage
 * primary (the SRK) and made persistent; their private halves never leave the TPM, and
 * nothing this backend writes to a file is secret. Whatever the TPM hands back is checked
 * before it is believed: each persistent key must have exactly the attributes, curve and
 * scheme we gave it (so a key someone put in its place is refused), and each NV index
 * exactly the attributes we defined it with.
 *
 * Counters: a new TPM NV counter starts at the highest value any counter of this TPM ever
 * held, not at 0. Provisioning increments each once, reads the raw values and stores
 * them as bases in a write-once index; a counter's value is raw - base.
 *
 * Authorization: everything uses empty passwords (the owner hierarchy's, which
 * provisioning and the fuse need, and the indices' own). Sessions are plain password
 * sessions; no parameter encryption.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "rot_backend.h"
#include "rot_tpm.h"

/* Our own ceilings on what we ask of the TPM in one command; the TPM's own limits
 * (TPM2_PT_NV_BUFFER_MAX, TPM2_PT_INPUT_BUFFER) may lower them. */
#define CHUNK_MAX      1024
#define CHUNK_MIN      64
#define EK_CERT_MAX    4096                    /* bytes of an EK certificate's NV index */
#define RANDOM_ROUNDS  (2 * PV_ROT_MAX_RANDOM) /* a TPM that returns nothing must not spin */
#define P256_COORD_LEN 32

struct rot_backend {
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *ctx;
    ESYS_TR srk, idk, ak;
    ESYS_TR fuse, bases;
    ESYS_TR counter[PV_ROT_COUNTERS];
    uint64_t base[PV_ROT_COUNTERS];
    uint16_t nv_chunk;    /* bytes per NV_Read */
    uint16_t input_chunk; /* bytes per SequenceUpdate */
};

/* ---- errors ---- */

/* PV_ERR_ROT with what failed and the TPM's (or the TSS's) decoded response code. */
static int PV_PRINTF(3, 4) tpm_fail(pv_err *e, TSS2_RC rc, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return pv_err_set(e, PV_ERR_ROT, "%s: %s (0x%x)", what, Tss2_RC_Decode(rc), (unsigned)rc);
}

/* True when rc is the TPM's own response code `code`, whatever handle, session or
 * parameter it names. */
static bool rc_is(TSS2_RC rc, TPM2_RC code)
{
    if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) {
        return false;
    }
    if ((rc & TPM2_RC_FMT1) != 0) {
        return (rc & (TPM2_RC_FMT1 | 0x3f)) == code;
    }
    return (rc & 0xfff) == code;
}

/* ---- templates ---- */

typedef struct key_spec {
    const char *name;
    TPM2_HANDLE handle;
    TPMA_OBJECT attrs;
    bool storage; /* the SRK: AES-128-CFB symmetric, no signing scheme */
} key_spec;

static const key_spec SRK = {"storage root key", ROT_TPM_SRK_HANDLE, ROT_TPM_SRK_ATTRS, true};
static const key_spec IDK = {"identity key", ROT_TPM_IDK_HANDLE, ROT_TPM_IDK_ATTRS, false};
static const key_spec AK = {"attestation key", ROT_TPM_AK_HANDLE, ROT_TPM_AK_ATTRS, false};

static void key_template(const key_spec *s, TPM2B_PUBLIC *t)
{
    memset(t, 0, sizeof(*t));
    TPMT_PUBLIC *p = &t->publicArea;
    p->type = TPM2_ALG_ECC;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = s->attrs;
    TPMS_ECC_PARMS *ecc = &p->parameters.eccDetail;
    if (s->storage) {
        ecc->symmetric.algorithm = TPM2_ALG_AES;
        ecc->symmetric.keyBits.aes = 128;
        ecc->symmetric.mode.aes = TPM2_ALG_CFB;
        ecc->scheme.scheme = TPM2_ALG_NULL;
        /* The TCG provisioning guidance's SRK template: a zero point of full size. */
        p->unique.ecc.x.size = P256_COORD_LEN;
        p->unique.ecc.y.size = P256_COORD_LEN;
    } else {
        ecc->symmetric.algorithm = TPM2_ALG_NULL;
        ecc->scheme.scheme = TPM2_ALG_ECDSA;
        ecc->scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    }
    ecc->curveID = TPM2_ECC_NIST_P256;
    ecc->kdf.scheme = TPM2_ALG_NULL;
}

/* The TCG EK Credential Profile's default RSA 2048 EK template (L-1). */
static void ek_template(TPM2B_PUBLIC *t)
{
    static const uint8_t policy[] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8,
                                     0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
                                     0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64,
                                     0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};
    memset(t, 0, sizeof(*t));
    TPMT_PUBLIC *p = &t->publicArea;
    p->type = TPM2_ALG_RSA;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                          TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p->authPolicy.size = sizeof(policy);
    memcpy(p->authPolicy.buffer, policy, sizeof(policy));
    TPMS_RSA_PARMS *rsa = &p->parameters.rsaDetail;
    rsa->symmetric.algorithm = TPM2_ALG_AES;
    rsa->symmetric.keyBits.aes = 128;
    rsa->symmetric.mode.aes = TPM2_ALG_CFB;
    rsa->scheme.scheme = TPM2_ALG_NULL;
    rsa->keyBits = 2048;
    rsa->exponent = 0;
    p->unique.rsa.size = 256;
}

/* Fails closed unless the TPM's public area is exactly what key_template() asked for,
 * with a P-256 point of sane size. */
static int key_check(const key_spec *s, const TPMT_PUBLIC *got, pv_err *e)
{
    TPM2B_PUBLIC want;
    key_template(s, &want);
    const TPMT_PUBLIC *w = &want.publicArea;
    const TPMS_ECC_PARMS *we = &w->parameters.eccDetail, *ge = &got->parameters.eccDetail;
    bool ok = got->type == w->type && got->nameAlg == w->nameAlg &&
              got->objectAttributes == w->objectAttributes && got->authPolicy.size == 0 &&
              ge->symmetric.algorithm == we->symmetric.algorithm &&
              ge->scheme.scheme == we->scheme.scheme && ge->curveID == we->curveID &&
              ge->kdf.scheme == TPM2_ALG_NULL;
    if (ok && s->storage) {
        ok = ge->symmetric.keyBits.aes == 128 && ge->symmetric.mode.aes == TPM2_ALG_CFB;
    }
    if (ok && !s->storage) {
        ok = ge->scheme.details.ecdsa.hashAlg == TPM2_ALG_SHA256;
    }
    if (ok) {
        const TPMS_ECC_POINT *q = &got->unique.ecc;
        ok = q->x.size > 0 && q->x.size <= P256_COORD_LEN && q->y.size > 0 &&
             q->y.size <= P256_COORD_LEN;
    }
    if (!ok) {
        return pv_err_set(e, PV_ERR_ROT,
                          "the %s at 0x%08x is not the key Pavise provisioned (type, "
                          "attributes, curve or scheme differ); refusing it",
                          s->name, (unsigned)s->handle);
    }
    return PV_OK;
}

/* Reads a persistent key's public area and checks it; *out (optional) gets it. */
static int key_read(rot_backend *b, const key_spec *s, ESYS_TR tr, TPM2B_PUBLIC **out, pv_err *e)
{
    TPM2B_PUBLIC *pub = NULL;
    TSS2_RC rc =
        Esys_ReadPublic(b->ctx, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "reading the %s", s->name);
    }
    int r = key_check(s, &pub->publicArea, e);
    if (r != PV_OK || out == NULL) {
        Esys_Free(pub);
        return r;
    }
    *out = pub;
    return PV_OK;
}

/* ---- NV helpers ---- */

/* Reads an NV index's public area and fails closed unless it is the index we defined:
 * our handle, SHA-256 names, no policy, `size` bytes, and attributes equal to want once
 * the bits in `ignore` are masked off. *attrs (optional) gets the attributes read. */
static int nv_check(rot_backend *b, ESYS_TR tr, TPM2_HANDLE handle, TPMA_NV want, TPMA_NV ignore,
                    uint16_t size, TPMA_NV *attrs, pv_err *e)
{
    TPM2B_NV_PUBLIC *pub = NULL;
    TSS2_RC rc =
        Esys_NV_ReadPublic(b->ctx, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "reading NV index 0x%08x", (unsigned)handle);
    }
    const TPMS_NV_PUBLIC *p = &pub->nvPublic;
    bool ok = p->nvIndex == handle && p->nameAlg == TPM2_ALG_SHA256 &&
              (p->attributes & ~ignore) == want && p->authPolicy.size == 0 && p->dataSize == size;
    TPMA_NV got = p->attributes;
    Esys_Free(pub);
    if (!ok) {
        return pv_err_set(e, PV_ERR_ROT,
                          "NV index 0x%08x is not the index Pavise defined (attributes 0x%08x); "
                          "refusing it",
                          (unsigned)handle, (unsigned)got);
    }
    if (attrs != NULL) {
        *attrs = got;
    }
    return PV_OK;
}

/* Reads len bytes at offset 0, in chunks the TPM accepts, with the given authorization
 * (the index itself or the owner). */
static int nv_read(rot_backend *b, ESYS_TR auth, ESYS_TR tr, uint8_t *out, size_t len, pv_err *e)
{
    size_t off = 0;
    while (off < len) {
        uint16_t n = (uint16_t)(len - off < b->nv_chunk ? len - off : b->nv_chunk);
        TPM2B_MAX_NV_BUFFER *data = NULL;
        TSS2_RC rc = Esys_NV_Read(b->ctx, auth, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n,
                                  (uint16_t)off, &data);
        if (rc != TSS2_RC_SUCCESS) {
            return tpm_fail(e, rc, "reading NV data");
        }
        bool ok = data->size == n;
        if (ok) {
            memcpy(out + off, data->buffer, n);
        }
        Esys_Free(data);
        if (!ok) {
            return pv_err_set(e, PV_ERR_ROT, "the TPM returned a short NV read");
        }
        off += n;
    }
    return PV_OK;
}

static uint64_t get_u64be(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void put_u64be(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* ---- connection ---- */

static int get_property(rot_backend *b, TPM2_PT pt, uint32_t *value, pv_err *e)
{
    TPMS_CAPABILITY_DATA *cap = NULL;
    TSS2_RC rc = Esys_GetCapability(b->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    TPM2_CAP_TPM_PROPERTIES, pt, 1, NULL, &cap);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "reading TPM property 0x%x", (unsigned)pt);
    }
    const TPML_TAGGED_TPM_PROPERTY *props = &cap->data.tpmProperties;
    bool ok = cap->capability == TPM2_CAP_TPM_PROPERTIES && props->count >= 1 &&
              props->tpmProperty[0].property == pt;
    if (ok) {
        *value = props->tpmProperty[0].value;
    }
    Esys_Free(cap);
    if (!ok) {
        return pv_err_set(e, PV_ERR_ROT, "the TPM does not report property 0x%x", (unsigned)pt);
    }
    return PV_OK;
}

static uint16_t clamp_chunk(uint32_t v)
{
    return (uint16_t)(v > CHUNK_MAX ? CHUNK_MAX : v < CHUNK_MIN ? CHUNK_MIN : v);
}

static void tpm_close(rot_backend *b)
{
    if (b == NULL) {
        return;
    }
    if (b->ctx != NULL) {
        Esys_Finalize(&b->ctx);
    }
    if (b->tcti != NULL) {
        Tss2_TctiLdr_Finalize(&b->tcti);
    }
    free(b);
}

static int tpm_connect(const pv_rot_config *cfg, rot_backend **out, pv_err *e)
{
    *out = NULL;
    /* The TSS logs to stderr by default; library code must not print. Its response codes
     * go into our messages instead. An explicit TSS2_LOG from the user still wins. */
    if (setenv("TSS2_LOG", "all+NONE", 0) != 0) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    rot_backend *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return pv_err_set(e, PV_ERR_NOMEM, "out of memory");
    }
    b->srk = b->idk = b->ak = b->fuse = b->bases = ESYS_TR_NONE;
    for (size_t i = 0; i < PV_ROT_COUNTERS; i++) {
        b->counter[i] = ESYS_TR_NONE;
    }
    int r = PV_ERR_ROT;
    const char *conf = cfg->tcti != NULL && cfg->tcti[0] != '\0' ? cfg->tcti : NULL;
    TSS2_RC rc = Tss2_TctiLdr_Initialize(conf, &b->tcti);
    if (rc != TSS2_RC_SUCCESS) {
        b->tcti = NULL;
        r = tpm_fail(e, rc, "cannot reach the TPM through TCTI \"%s\"",
                     conf != NULL ? conf : "(default)");
        goto out;
    }
    rc = Esys_Initialize(&b->ctx, b->tcti, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        b->ctx = NULL;
        r = tpm_fail(e, rc, "cannot start a TPM session");
        goto out;
    }
    uint32_t nv_max = 0, input_max = 0;
    r = get_property(b, TPM2_PT_NV_BUFFER_MAX, &nv_max, e);
    if (r == PV_OK) {
        r = get_property(b, TPM2_PT_INPUT_BUFFER, &input_max, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    b->nv_chunk = clamp_chunk(nv_max);
    b->input_chunk = clamp_chunk(input_max);
    *out = b;
    b = NULL;
    r = PV_OK;
out:
    tpm_close(b);
    return r;
}

/* True when any handle in [first, first + ROT_TPM_RANGE_SIZE) is in use. */
static int range_in_use(rot_backend *b, TPM2_HANDLE first, bool *used, pv_err *e)
{
    TPMS_CAPABILITY_DATA *cap = NULL;
    TSS2_RC rc = Esys_GetCapability(b->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    TPM2_CAP_HANDLES, first, 1, NULL, &cap);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "listing TPM handles from 0x%08x", (unsigned)first);
    }
    const TPML_HANDLE *h = &cap->data.handles;
    bool ok = cap->capability == TPM2_CAP_HANDLES;
    /* The TPM lists handles from `first` upwards, within first's type only. */
    *used =
        ok && h->count > 0 && h->handle[0] >= first && h->handle[0] - first < ROT_TPM_RANGE_SIZE;
    Esys_Free(cap);
    if (!ok) {
        return pv_err_set(e, PV_ERR_ROT, "the TPM answered a handle listing with something else");
    }
    return PV_OK;
}

/* Looks up a handle. *tr is ESYS_TR_NONE when the TPM has nothing there. */
static int lookup(rot_backend *b, TPM2_HANDLE handle, ESYS_TR *tr, pv_err *e)
{
    *tr = ESYS_TR_NONE;
    TSS2_RC rc =
        Esys_TR_FromTPMPublic(b->ctx, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, tr);
    if (rc == TSS2_RC_SUCCESS) {
        return PV_OK;
    }
    *tr = ESYS_TR_NONE;
    if (rc_is(rc, TPM2_RC_HANDLE)) {
        return PV_OK;
    }
    return tpm_fail(e, rc, "looking up TPM handle 0x%08x", (unsigned)handle);
}

/* ---- provisioning ---- */

static int make_persistent(rot_backend *b, ESYS_TR transient, const key_spec *s, ESYS_TR *out,
                           pv_err *e)
{
    TSS2_RC rc = Esys_EvictControl(b->ctx, ESYS_TR_RH_OWNER, transient, ESYS_TR_PASSWORD,
                                   ESYS_TR_NONE, ESYS_TR_NONE, s->handle, out);
    if (rc != TSS2_RC_SUCCESS) {
        *out = ESYS_TR_NONE;
        return tpm_fail(e, rc, "making the %s persistent at 0x%08x", s->name, (unsigned)s->handle);
    }
    return PV_OK;
}

static int create_srk(rot_backend *b, pv_err *e)
{
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_PUBLIC tmpl;
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    ESYS_TR t = ESYS_TR_NONE;
    key_template(&SRK, &tmpl);
    TSS2_RC rc =
        Esys_CreatePrimary(b->ctx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                           &sens, &tmpl, &outside, &pcrs, &t, NULL, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "creating the storage root key");
    }
    int r = make_persistent(b, t, &SRK, &b->srk, e);
    Esys_FlushContext(b->ctx, t);
    return r;
}

/* Creates a key under the SRK, loads it and makes it persistent. The wrapped private
 * blob only passes through memory. */
static int create_key(rot_backend *b, const key_spec *s, ESYS_TR *out, pv_err *e)
{
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_PUBLIC tmpl;
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TPM2B_PRIVATE *priv = NULL;
    TPM2B_PUBLIC *pub = NULL;
    ESYS_TR t = ESYS_TR_NONE;
    int r = PV_ERR_ROT;
    key_template(s, &tmpl);
    TSS2_RC rc = Esys_Create(b->ctx, b->srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                             &tmpl, &outside, &pcrs, &priv, &pub, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail(e, rc, "creating the %s", s->name);
        goto out;
    }
    rc = Esys_Load(b->ctx, b->srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &t);
    if (rc != TSS2_RC_SUCCESS) {
        t = ESYS_TR_NONE;
        r = tpm_fail(e, rc, "loading the %s", s->name);
        goto out;
    }
    r = make_persistent(b, t, s, out, e);
out:
    if (t != ESYS_TR_NONE) {
        Esys_FlushContext(b->ctx, t);
    }
    if (priv != NULL) {
        pv_wipe(priv, sizeof(*priv));
    }
    Esys_Free(priv);
    Esys_Free(pub);
    return r;
}

static int nv_define(rot_backend *b, TPM2_HANDLE handle, TPMA_NV attrs, uint16_t size, ESYS_TR *out,
                     pv_err *e)
{
    TPM2B_AUTH auth = {0};
    TPM2B_NV_PUBLIC pub = {0};
    pub.nvPublic.nvIndex = handle;
    pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
    pub.nvPublic.attributes = attrs;
    pub.nvPublic.dataSize = size;
    TSS2_RC rc = Esys_NV_DefineSpace(b->ctx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                     ESYS_TR_NONE, &auth, &pub, out);
    if (rc != TSS2_RC_SUCCESS) {
        *out = ESYS_TR_NONE;
        return tpm_fail(e, rc, "defining NV index 0x%08x", (unsigned)handle);
    }
    return PV_OK;
}

static int counter_increment(rot_backend *b, unsigned id, pv_err *e)
{
    TSS2_RC rc = Esys_NV_Increment(b->ctx, b->counter[id], b->counter[id], ESYS_TR_PASSWORD,
                                   ESYS_TR_NONE, ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "incrementing counter %u", id);
    }
    return PV_OK;
}

/* The raw value of a counter, after checking the index is still our counter. */
static int counter_raw(rot_backend *b, unsigned id, uint64_t *raw, pv_err *e)
{
    uint8_t v[8];
    TPM2_HANDLE h = ROT_TPM_NV_COUNTER_FIRST + id;
    int r = nv_check(b, b->counter[id], h, ROT_TPM_COUNTER_ATTRS | TPMA_NV_WRITTEN, 0, 8, NULL, e);
    if (r == PV_OK) {
        r = nv_read(b, b->counter[id], b->counter[id], v, sizeof(v), e);
    }
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "counter %u", id);
    }
    *raw = get_u64be(v);
    return PV_OK;
}

static int write_once(rot_backend *b, ESYS_TR tr, const uint8_t *data, uint16_t len, pv_err *e)
{
    TPM2B_MAX_NV_BUFFER buf = {.size = len};
    memcpy(buf.buffer, data, len);
    TSS2_RC rc = Esys_NV_Write(b->ctx, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, &buf, 0);
    if (rc == TSS2_RC_SUCCESS) {
        rc = Esys_NV_WriteLock(b->ctx, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE);
    }
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "writing a write-once NV index");
    }
    return PV_OK;
}

static int provision_counters(rot_backend *b, pv_err *e)
{
    uint8_t bases[8 * PV_ROT_COUNTERS];
    for (unsigned i = 0; i < PV_ROT_COUNTERS; i++) {
        int r =
            nv_define(b, ROT_TPM_NV_COUNTER_FIRST + i, ROT_TPM_COUNTER_ATTRS, 8, &b->counter[i], e);
        /* A counter cannot be read before its first increment. */
        if (r == PV_OK) {
            r = counter_increment(b, i, e);
        }
        if (r == PV_OK) {
            r = counter_raw(b, i, &b->base[i], e);
        }
        if (r != PV_OK) {
            return r;
        }
        put_u64be(bases + 8 * i, b->base[i]);
    }
    int r = nv_define(b, ROT_TPM_NV_BASES, ROT_TPM_ONCE_ATTRS, sizeof(bases), &b->bases, e);
    if (r == PV_OK) {
        r = write_once(b, b->bases, bases, sizeof(bases), e);
    }
    return r;
}

/* After a failed provisioning, removes the objects it created (those b holds), so a
 * retry can start clean. Best effort: the failure being reported matters more. */
static void provision_undo(rot_backend *b)
{
    ESYS_TR *keys[] = {&b->ak, &b->idk, &b->srk};
    const TPM2_HANDLE handles[] = {ROT_TPM_AK_HANDLE, ROT_TPM_IDK_HANDLE, ROT_TPM_SRK_HANDLE};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        ESYS_TR gone = ESYS_TR_NONE;
        if (*keys[i] != ESYS_TR_NONE) {
            Esys_EvictControl(b->ctx, ESYS_TR_RH_OWNER, *keys[i], ESYS_TR_PASSWORD, ESYS_TR_NONE,
                              ESYS_TR_NONE, handles[i], &gone);
            *keys[i] = ESYS_TR_NONE;
        }
    }
    ESYS_TR *nv[2 + PV_ROT_COUNTERS] = {&b->fuse, &b->bases};
    for (unsigned i = 0; i < PV_ROT_COUNTERS; i++) {
        nv[2 + i] = &b->counter[i];
    }
    for (size_t i = 0; i < sizeof(nv) / sizeof(nv[0]); i++) {
        if (*nv[i] != ESYS_TR_NONE) {
            Esys_NV_UndefineSpace(b->ctx, ESYS_TR_RH_OWNER, *nv[i], ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                  ESYS_TR_NONE);
            *nv[i] = ESYS_TR_NONE;
        }
    }
}

static int open_objects(rot_backend *b, pv_err *e);

static int tpm_provision(const pv_rot_config *cfg, rot_backend **out, pv_err *e)
{
    rot_backend *b = NULL;
    bool used_keys = false, used_nv = false, started = false;
    int r = tpm_connect(cfg, &b, e);
    if (r != PV_OK) {
        return r;
    }
    r = range_in_use(b, ROT_TPM_PERSISTENT_FIRST, &used_keys, e);
    if (r == PV_OK) {
        r = range_in_use(b, ROT_TPM_NV_FIRST, &used_nv, e);
    }
    if (r != PV_OK) {
        goto out;
    }
    if (used_keys || used_nv) {
        r = pv_err_set(e, PV_ERR_EXISTS,
                       "the TPM already holds a Pavise identity (handles 0x%08x or NV indices "
                       "0x%08x onwards are in use)",
                       (unsigned)ROT_TPM_PERSISTENT_FIRST, (unsigned)ROT_TPM_NV_FIRST);
        goto out;
    }
    started = true;
    r = create_srk(b, e);
    if (r == PV_OK) {
        r = create_key(b, &IDK, &b->idk, e);
    }
    if (r == PV_OK) {
        r = create_key(b, &AK, &b->ak, e);
    }
    if (r == PV_OK) {
        r = nv_define(b, ROT_TPM_NV_FUSE, ROT_TPM_ONCE_ATTRS, PV_SHA256_LEN, &b->fuse, e);
    }
    if (r == PV_OK) {
        r = provision_counters(b, e);
    }
    /* Then look at the result the way every later open will, so a provisioning that
     * open would refuse fails here, at the factory. */
    if (r == PV_OK) {
        r = open_objects(b, e);
    }
out:
    if (r != PV_OK) {
        if (started) {
            provision_undo(b);
        }
        tpm_close(b);
        return r == PV_ERR_EXISTS ? r : pv_err_wrap(e, r, "provisioning the TPM");
    }
    *out = b;
    return PV_OK;
}

/* ---- open ---- */

/* Finds every object provisioning made and checks each is what we made. */
static int open_objects(rot_backend *b, pv_err *e)
{
    struct {
        TPM2_HANDLE handle;
        ESYS_TR *tr;
    } objs[5 + PV_ROT_COUNTERS] = {
        {ROT_TPM_SRK_HANDLE, &b->srk}, {ROT_TPM_IDK_HANDLE, &b->idk}, {ROT_TPM_AK_HANDLE, &b->ak},
        {ROT_TPM_NV_FUSE, &b->fuse},   {ROT_TPM_NV_BASES, &b->bases},
    };
    for (unsigned i = 0; i < PV_ROT_COUNTERS; i++) {
        objs[5 + i].handle = ROT_TPM_NV_COUNTER_FIRST + i;
        objs[5 + i].tr = &b->counter[i];
    }
    size_t n = sizeof(objs) / sizeof(objs[0]), missing = 0;
    TPM2_HANDLE first_missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (*objs[i].tr != ESYS_TR_NONE) {
            continue; /* provisioning has it already */
        }
        int r = lookup(b, objs[i].handle, objs[i].tr, e);
        if (r != PV_OK) {
            return r;
        }
        if (*objs[i].tr == ESYS_TR_NONE && missing++ == 0) {
            first_missing = objs[i].handle;
        }
    }
    if (missing == n) {
        return pv_err_set(e, PV_ERR_NOT_FOUND,
                          "the TPM holds no Pavise identity (not provisioned)");
    }
    if (missing > 0) {
        return pv_err_set(e, PV_ERR_ROT,
                          "the TPM holds only part of a Pavise identity (0x%08x is missing); "
                          "an interrupted provisioning?",
                          (unsigned)first_missing);
    }
    int r = key_read(b, &SRK, b->srk, NULL, e);
    if (r == PV_OK) {
        r = key_read(b, &IDK, b->idk, NULL, e);
    }
    if (r == PV_OK) {
        r = key_read(b, &AK, b->ak, NULL, e);
    }
    if (r == PV_OK) {
        r = nv_check(b, b->fuse, ROT_TPM_NV_FUSE, ROT_TPM_ONCE_ATTRS,
                     TPMA_NV_WRITTEN | TPMA_NV_WRITELOCKED, PV_SHA256_LEN, NULL, e);
    }
    uint8_t bases[8 * PV_ROT_COUNTERS];
    if (r == PV_OK) {
        r = nv_check(b, b->bases, ROT_TPM_NV_BASES,
                     ROT_TPM_ONCE_ATTRS | TPMA_NV_WRITTEN | TPMA_NV_WRITELOCKED, 0, sizeof(bases),
                     NULL, e);
    }
    if (r == PV_OK) {
        r = nv_read(b, b->bases, b->bases, bases, sizeof(bases), e);
    }
    /* Each read checks its counter again; this reports a broken device at open. */
    for (unsigned i = 0; r == PV_OK && i < PV_ROT_COUNTERS; i++) {
        r = nv_check(b, b->counter[i], ROT_TPM_NV_COUNTER_FIRST + i,
                     ROT_TPM_COUNTER_ATTRS | TPMA_NV_WRITTEN, 0, 8, NULL, e);
    }
    if (r != PV_OK) {
        return r;
    }
    for (unsigned i = 0; i < PV_ROT_COUNTERS; i++) {
        b->base[i] = get_u64be(bases + 8 * i);
    }
    return PV_OK;
}

static int tpm_open(const pv_rot_config *cfg, rot_backend **out, pv_err *e)
{
    rot_backend *b = NULL;
    int r = tpm_connect(cfg, &b, e);
    if (r != PV_OK) {
        return r;
    }
    r = open_objects(b, e);
    if (r != PV_OK) {
        tpm_close(b);
        return r;
    }
    *out = b;
    return PV_OK;
}

/* ---- keys ---- */

/* A pv_key from a P-256 point: the SubjectPublicKeyInfo DER is a fixed prefix
 * (id-ecPublicKey, prime256v1, an uncompressed point) and the two coordinates. */
static int key_from_point(const TPMS_ECC_POINT *q, pv_key **out, pv_err *e)
{
    static const uint8_t prefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                     0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                     0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};
    uint8_t der[sizeof(prefix) + 2 * P256_COORD_LEN] = {0};
    /* key_check() bounded both coordinates to 1..32 bytes. */
    memcpy(der, prefix, sizeof(prefix));
    memcpy(der + sizeof(prefix) + P256_COORD_LEN - q->x.size, q->x.buffer, q->x.size);
    memcpy(der + sizeof(der) - q->y.size, q->y.buffer, q->y.size);
    int r = pv_key_from_spki_der(der, sizeof(der), out, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, PV_ERR_ROT, "the TPM's public key is not a valid P-256 point");
    }
    return PV_OK;
}

static int public_key(rot_backend *b, const key_spec *s, ESYS_TR tr, pv_key **out, pv_err *e)
{
    TPM2B_PUBLIC *pub = NULL;
    int r = key_read(b, s, tr, &pub, e);
    if (r != PV_OK) {
        return r;
    }
    r = key_from_point(&pub->publicArea.unique.ecc, out, e);
    Esys_Free(pub);
    return r;
}

static int tpm_identity_key(rot_backend *b, pv_key **out, pv_err *e)
{
    return public_key(b, &IDK, b->idk, out, e);
}

static int tpm_attestation_key(rot_backend *b, pv_key **out, pv_err *e)
{
    return public_key(b, &AK, b->ak, out, e);
}

static int tpm_attestation_key_tpm_public(rot_backend *b, pv_buf *out, pv_err *e)
{
    TPM2B_PUBLIC *pub = NULL;
    uint8_t m[sizeof(TPMT_PUBLIC)];
    size_t n = 0;
    int r = key_read(b, &AK, b->ak, &pub, e);
    if (r != PV_OK) {
        return r;
    }
    TSS2_RC rc = Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, m, sizeof(m), &n);
    Esys_Free(pub);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "marshaling the attestation key's public area");
    }
    r = pv_buf_append(out, m, n);
    if (r != PV_OK) {
        return pv_err_set(e, r, "no room for the attestation key's public area");
    }
    return PV_OK;
}

/* ---- signing ---- */

/* Hashes msg inside the TPM: a restricted key signs only a digest with a ticket that
 * proves the TPM computed it over data not beginning with TPM_GENERATED_VALUE. */
static int tpm_hash(rot_backend *b, const uint8_t *msg, size_t len, TPM2B_DIGEST **digest,
                    TPMT_TK_HASHCHECK **ticket, pv_err *e)
{
    TPM2B_AUTH auth = {0};
    TPM2B_MAX_BUFFER chunk = {0};
    ESYS_TR seq = ESYS_TR_NONE;
    TSS2_RC rc = Esys_HashSequenceStart(b->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &auth,
                                        TPM2_ALG_SHA256, &seq);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "starting a hash sequence");
    }
    /* Keep the last chunk (possibly empty) for SequenceComplete. */
    size_t off = 0;
    while (len - off > b->input_chunk) {
        chunk.size = b->input_chunk;
        memcpy(chunk.buffer, msg + off, chunk.size);
        rc = Esys_SequenceUpdate(b->ctx, seq, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &chunk);
        if (rc != TSS2_RC_SUCCESS) {
            Esys_FlushContext(b->ctx, seq);
            return tpm_fail(e, rc, "hashing the message");
        }
        off += chunk.size;
    }
    chunk.size = (uint16_t)(len - off);
    if (chunk.size > 0) {
        memcpy(chunk.buffer, msg + off, chunk.size);
    }
    rc = Esys_SequenceComplete(b->ctx, seq, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &chunk,
                               ESYS_TR_RH_OWNER, digest, ticket);
    if (rc != TSS2_RC_SUCCESS) {
        Esys_FlushContext(b->ctx, seq);
        return tpm_fail(e, rc, "hashing the message");
    }
    return PV_OK;
}

/* The TPM's ECDSA-SHA256 signature as ES256 raw r || s, each coordinate left-padded to
 * 32 bytes (the TPM drops leading zero bytes). */
static int sig_to_raw(const TPMT_SIGNATURE *s, uint8_t sig[PV_ES256_SIG_LEN], pv_err *e)
{
    const TPMS_SIGNATURE_ECC *ec = &s->signature.ecdsa;
    if (s->sigAlg != TPM2_ALG_ECDSA || ec->hash != TPM2_ALG_SHA256 || ec->signatureR.size == 0 ||
        ec->signatureR.size > P256_COORD_LEN || ec->signatureS.size == 0 ||
        ec->signatureS.size > P256_COORD_LEN) {
        return pv_err_set(e, PV_ERR_ROT, "the TPM returned a signature that is not ES256");
    }
    memset(sig, 0, PV_ES256_SIG_LEN);
    memcpy(sig + P256_COORD_LEN - ec->signatureR.size, ec->signatureR.buffer, ec->signatureR.size);
    memcpy(sig + PV_ES256_SIG_LEN - ec->signatureS.size, ec->signatureS.buffer,
           ec->signatureS.size);
    return PV_OK;
}

static int tpm_sign(rot_backend *b, const void *msg, size_t len, uint8_t sig[PV_ES256_SIG_LEN],
                    pv_err *e)
{
    static const uint8_t generated[4] = {0xff, 0x54, 0x43, 0x47}; /* TPM_GENERATED_VALUE */
    TPM2B_DIGEST *digest = NULL;
    TPMT_TK_HASHCHECK *ticket = NULL;
    TPMT_SIGNATURE *s = NULL;
    TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_NULL}; /* the key's own: ECDSA-SHA256 */
    int r = PV_ERR_ROT;
    if (len >= sizeof(generated) && memcmp(msg, generated, sizeof(generated)) == 0) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "the attestation key does not sign a message that begins with "
                          "TPM_GENERATED_VALUE (it would pass for a TPM quote)");
    }
    /* The TPM gives no ticket for a message too short to show it does not begin with
     * TPM_GENERATED_VALUE (TicketIsSafe in the reference implementation), so a restricted
     * key cannot sign one. Say so rather than pass on a NULL ticket. */
    if (len < sizeof(generated)) {
        return pv_err_set(e, PV_ERR_INVALID_ARG,
                          "the attestation key does not sign a message shorter than %zu bytes",
                          sizeof(generated));
    }
    r = tpm_hash(b, msg, len, &digest, &ticket, e);
    if (r != PV_OK) {
        goto out;
    }
    if (ticket->tag != TPM2_ST_HASHCHECK || ticket->hierarchy == TPM2_RH_NULL ||
        digest->size != PV_SHA256_LEN) {
        r = pv_err_set(e, PV_ERR_INVALID_ARG, "the TPM refused to vouch for this message's digest");
        goto out;
    }
    TSS2_RC rc = Esys_Sign(b->ctx, b->ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, digest,
                           &scheme, ticket, &s);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail(e, rc, "signing with the attestation key");
        goto out;
    }
    r = sig_to_raw(s, sig, e);
out:
    Esys_Free(s);
    Esys_Free(ticket);
    Esys_Free(digest);
    return r;
}

/* TPM2_Quote: the TPM builds and signs a TPMS_ATTEST holding qualifying and the digest of
 * PV_ROT_PCR. The attestation key is restricted, so only the TPM's own attestation
 * commands make it sign something that begins with TPM_GENERATED_VALUE; the verifier
 * checks the signature over exactly these bytes (pv_quote_verify), so they are passed
 * on as the TPM produced them. */
static int tpm_quote(rot_backend *b, const uint8_t qualifying[PV_SHA256_LEN], pv_buf *attest,
                     uint8_t sig[PV_ES256_SIG_LEN], pv_err *e)
{
    TPM2B_DATA qdata = {.size = PV_SHA256_LEN};
    TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_ECDSA};
    TPML_PCR_SELECTION sel = {.count = 1};
    TPM2B_ATTEST *quoted = NULL;
    TPMT_SIGNATURE *s = NULL;
    uint8_t raw[PV_ES256_SIG_LEN];
    int r = PV_ERR_ROT;
    memcpy(qdata.buffer, qualifying, PV_SHA256_LEN);
    scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    sel.pcrSelections[0].pcrSelect[PV_ROT_PCR / 8] = (uint8_t)(1u << (PV_ROT_PCR % 8));
    TSS2_RC rc = Esys_Quote(b->ctx, b->ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qdata,
                            &scheme, &sel, &quoted, &s);
    if (rc != TSS2_RC_SUCCESS) {
        quoted = NULL;
        s = NULL;
        r = tpm_fail(e, rc, "quoting PCR %d with the attestation key", PV_ROT_PCR);
        goto out;
    }
    if (quoted->size == 0) {
        r = pv_err_set(e, PV_ERR_ROT, "the TPM returned an empty quote");
        goto out;
    }
    r = sig_to_raw(s, raw, e);
    if (r != PV_OK) {
        goto out;
    }
    r = pv_buf_append(attest, quoted->attestationData, quoted->size);
    if (r != PV_OK) {
        r = pv_err_set(e, r, "no room for the quote (%u bytes)", (unsigned)quoted->size);
        goto out;
    }
    memcpy(sig, raw, sizeof(raw));
    r = PV_OK;
out:
    Esys_Free(s);
    Esys_Free(quoted);
    return r;
}

static int tpm_random(rot_backend *b, void *out, size_t n, pv_err *e)
{
    uint8_t *p = out;
    size_t got = 0;
    for (int round = 0; got < n; round++) {
        if (round >= RANDOM_ROUNDS) {
            pv_wipe(out, got);
            return pv_err_set(e, PV_ERR_ROT, "the TPM's random number generator stalled");
        }
        size_t want = n - got < sizeof(TPMU_HA) ? n - got : sizeof(TPMU_HA);
        TPM2B_DIGEST *rnd = NULL;
        TSS2_RC rc =
            Esys_GetRandom(b->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, (uint16_t)want, &rnd);
        if (rc != TSS2_RC_SUCCESS) {
            pv_wipe(out, got);
            return tpm_fail(e, rc, "reading random bytes from the TPM");
        }
        size_t k = rnd->size < want ? rnd->size : want;
        memcpy(p + got, rnd->buffer, k);
        pv_wipe(rnd, sizeof(*rnd));
        Esys_Free(rnd);
        got += k;
    }
    return PV_OK;
}

/* ---- measurements ---- */

static int tpm_pcr_extend(rot_backend *b, const uint8_t digest[PV_SHA256_LEN], pv_err *e)
{
    TPML_DIGEST_VALUES d = {.count = 1};
    d.digests[0].hashAlg = TPM2_ALG_SHA256;
    memcpy(d.digests[0].digest.sha256, digest, PV_SHA256_LEN);
    TSS2_RC rc = Esys_PCR_Extend(b->ctx, ESYS_TR_PCR0 + PV_ROT_PCR, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                 ESYS_TR_NONE, &d);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "extending PCR %d", PV_ROT_PCR);
    }
    return PV_OK;
}

static int tpm_pcr_read(rot_backend *b, uint8_t out[PV_SHA256_LEN], pv_err *e)
{
    TPML_PCR_SELECTION sel = {.count = 1};
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    sel.pcrSelections[0].pcrSelect[PV_ROT_PCR / 8] = (uint8_t)(1u << (PV_ROT_PCR % 8));
    TPML_PCR_SELECTION *sel_out = NULL;
    TPML_DIGEST *values = NULL;
    TSS2_RC rc = Esys_PCR_Read(b->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, NULL,
                               &sel_out, &values);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "reading PCR %d", PV_ROT_PCR);
    }
    bool ok =
        sel_out->count == 1 && sel_out->pcrSelections[0].hash == TPM2_ALG_SHA256 &&
        sel_out->pcrSelections[0].sizeofSelect > PV_ROT_PCR / 8 &&
        (sel_out->pcrSelections[0].pcrSelect[PV_ROT_PCR / 8] & (1u << (PV_ROT_PCR % 8))) != 0 &&
        values->count == 1 && values->digests[0].size == PV_SHA256_LEN;
    if (ok) {
        memcpy(out, values->digests[0].buffer, PV_SHA256_LEN);
    }
    Esys_Free(sel_out);
    Esys_Free(values);
    if (!ok) {
        return pv_err_set(e, PV_ERR_ROT, "the TPM has no SHA-256 value for PCR %d", PV_ROT_PCR);
    }
    return PV_OK;
}

static int tpm_boot_epoch(rot_backend *b, char out[65], pv_err *e)
{
    TPMS_TIME_INFO *t = NULL;
    TSS2_RC rc = Esys_ReadClock(b->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &t);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "reading the TPM clock");
    }
    /* resetCount only: a suspend and resume bumps restartCount but keeps the PCRs. A TPM
     * Restart (which clears them without a reset) is caught by rot.c's zero-PCR rule. */
    snprintf(out, 65, "tpm-%u", (unsigned)t->clockInfo.resetCount);
    Esys_Free(t);
    return PV_OK;
}

/* ---- counters ---- */

static int tpm_counter_read(rot_backend *b, unsigned id, uint64_t *value, pv_err *e)
{
    uint64_t raw = 0;
    int r = counter_raw(b, id, &raw, e);
    if (r != PV_OK) {
        return r;
    }
    if (raw < b->base[id]) {
        return pv_err_set(e, PV_ERR_ROT, "counter %u reads below its provisioned base", id);
    }
    *value = raw - b->base[id];
    return PV_OK;
}

/* A TPM counter only steps by one, so a power cut part-way leaves it between the old
 * value and `to`; the caller's retry finishes the advance. */
static int tpm_counter_advance(rot_backend *b, unsigned id, uint64_t to, pv_err *e)
{
    uint64_t cur = 0;
    int r = tpm_counter_read(b, id, &cur, e);
    if (r != PV_OK) {
        return r;
    }
    if (to <= cur || to - cur > PV_ROT_MAX_COUNTER_STEP) {
        return pv_err_set(e, PV_ERR_INTERNAL, "counter %u: bad advance", id);
    }
    for (uint64_t i = cur; i < to; i++) {
        r = counter_increment(b, id, e);
        if (r != PV_OK) {
            return r;
        }
    }
    r = tpm_counter_read(b, id, &cur, e);
    if (r == PV_OK && cur != to) {
        r = pv_err_set(e, PV_ERR_ROT, "counter %u reads %llu after advancing to %llu", id,
                       (unsigned long long)cur, (unsigned long long)to);
    }
    return r;
}

/* ---- the fuse ---- */

static int tpm_fuse_trust_anchor(rot_backend *b, const uint8_t hash[PV_SHA256_LEN], pv_err *e)
{
    TPMA_NV attrs = 0;
    int r = nv_check(b, b->fuse, ROT_TPM_NV_FUSE, ROT_TPM_ONCE_ATTRS,
                     TPMA_NV_WRITTEN | TPMA_NV_WRITELOCKED, PV_SHA256_LEN, &attrs, e);
    if (r != PV_OK) {
        return r;
    }
    if ((attrs & TPMA_NV_WRITELOCKED) != 0) {
        return pv_err_set(e, PV_ERR_LOCKED, "a trust anchor is already fused");
    }
    if ((attrs & TPMA_NV_WRITTEN) != 0) {
        /* Written but not locked: an earlier fuse stopped between the two steps. Finish
         * it if it wrote this same value; never overwrite another. */
        uint8_t cur[PV_SHA256_LEN];
        r = nv_read(b, b->fuse, b->fuse, cur, sizeof(cur), e);
        if (r != PV_OK) {
            return r;
        }
        if (memcmp(cur, hash, sizeof(cur)) != 0) {
            return pv_err_set(e, PV_ERR_LOCKED, "another trust anchor is already written");
        }
    }
    r = write_once(b, b->fuse, hash, PV_SHA256_LEN, e);
    if (r != PV_OK) {
        return pv_err_wrap(e, r, "fusing the trust anchor");
    }
    return PV_OK;
}

static int tpm_trust_anchor(rot_backend *b, uint8_t hash[PV_SHA256_LEN], pv_err *e)
{
    TPMA_NV attrs = 0;
    int r = nv_check(b, b->fuse, ROT_TPM_NV_FUSE, ROT_TPM_ONCE_ATTRS,
                     TPMA_NV_WRITTEN | TPMA_NV_WRITELOCKED, PV_SHA256_LEN, &attrs, e);
    if (r != PV_OK) {
        return r;
    }
    if ((attrs & TPMA_NV_WRITTEN) == 0) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "no trust anchor is fused yet");
    }
    if ((attrs & TPMA_NV_WRITELOCKED) == 0) {
        return pv_err_set(e, PV_ERR_ROT, "the trust anchor is written but not locked; refusing it");
    }
    return nv_read(b, b->fuse, b->fuse, hash, PV_SHA256_LEN, e);
}

/* ---- enrollment ---- */

/* Length of the DER element at the start of p (tag, length, contents); 0 if it is not a
 * SEQUENCE whose encoding fits in n bytes. */
static size_t der_seq_len(const uint8_t *p, size_t n)
{
    if (n < 2 || p[0] != 0x30) {
        return 0;
    }
    size_t len = p[1], hdr = 2;
    if (len >= 0x80) {
        size_t k = len & 0x7f;
        if (k == 0 || k > 3 || n < 2 + k) {
            return 0;
        }
        len = 0;
        for (size_t i = 0; i < k; i++) {
            len = (len << 8) | p[2 + i];
        }
        hdr += k;
    }
    return len <= n - hdr ? hdr + len : 0;
}

static int tpm_ek_certificate(rot_backend *b, pv_buf *der, pv_err *e)
{
    ESYS_TR tr = ESYS_TR_NONE;
    TPM2B_NV_PUBLIC *pub = NULL;
    uint8_t *data = NULL;
    int r = lookup(b, ROT_TPM_NV_EK_CERT_RSA, &tr, e);
    if (r != PV_OK) {
        return r;
    }
    if (tr == ESYS_TR_NONE) {
        return pv_err_set(e, PV_ERR_NOT_FOUND, "the TPM has no RSA EK certificate (NV 0x%08x)",
                          (unsigned)ROT_TPM_NV_EK_CERT_RSA);
    }
    TSS2_RC rc =
        Esys_NV_ReadPublic(b->ctx, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_fail(e, rc, "reading the EK certificate's NV index");
        goto out;
    }
    TPMA_NV attrs = pub->nvPublic.attributes;
    size_t size = pub->nvPublic.dataSize;
    if ((attrs & TPMA_NV_WRITTEN) == 0) {
        r = pv_err_set(e, PV_ERR_NOT_FOUND, "the TPM's EK certificate index is empty");
        goto out;
    }
    if (size == 0 || size > EK_CERT_MAX) {
        r = pv_err_set(e, PV_ERR_ROT, "the TPM's EK certificate index holds %zu bytes", size);
        goto out;
    }
    ESYS_TR auth = (attrs & TPMA_NV_AUTHREAD) != 0    ? tr
                   : (attrs & TPMA_NV_OWNERREAD) != 0 ? ESYS_TR_RH_OWNER
                                                      : ESYS_TR_NONE;
    if (auth == ESYS_TR_NONE) {
        r = pv_err_set(e, PV_ERR_ROT, "the TPM's EK certificate is readable by the platform only");
        goto out;
    }
    data = malloc(size);
    if (data == NULL) {
        r = pv_err_set(e, PV_ERR_NOMEM, "out of memory");
        goto out;
    }
    r = nv_read(b, auth, tr, data, size, e);
    if (r != PV_OK) {
        goto out;
    }
    /* The index may be larger than the certificate; the DER says where it ends. */
    size_t len = der_seq_len(data, size);
    if (len == 0) {
        r = pv_err_set(e, PV_ERR_FORMAT, "the TPM's EK certificate is not DER");
        goto out;
    }
    r = pv_buf_append(der, data, len);
    if (r != PV_OK) {
        pv_err_set(e, r, "no room for the EK certificate");
    }
out:
    free(data);
    Esys_Free(pub);
    if (tr != ESYS_TR_NONE) {
        Esys_TR_Close(b->ctx, &tr);
    }
    return r;
}

/* The endorsement key from the default template, and a policy session that satisfies its
 * policy (PolicySecret with the endorsement hierarchy). */
static int ek_start(rot_backend *b, ESYS_TR *ek, ESYS_TR *sess, pv_err *e)
{
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_PUBLIC tmpl;
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcrs = {0};
    TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
    TPM2B_NONCE nonce = {0}, ref = {0};
    TPM2B_DIGEST cphash = {0};
    ek_template(&tmpl);
    TSS2_RC rc =
        Esys_CreatePrimary(b->ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, ek, NULL, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        *ek = ESYS_TR_NONE;
        return tpm_fail(e, rc, "creating the endorsement key");
    }
    rc = Esys_StartAuthSession(b->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, sess);
    if (rc != TSS2_RC_SUCCESS) {
        *sess = ESYS_TR_NONE;
        return tpm_fail(e, rc, "starting a policy session");
    }
    rc = Esys_PolicySecret(b->ctx, ESYS_TR_RH_ENDORSEMENT, *sess, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, &nonce, &cphash, &ref, 0, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        return tpm_fail(e, rc, "satisfying the endorsement key's policy");
    }
    return PV_OK;
}

/* The TPM's answers when a credential does not open with this EK and AK. */
static bool credential_refused(rot_backend *b, TSS2_RC rc)
{
    static const TPM2_RC refusals[] = {TPM2_RC_INTEGRITY, TPM2_RC_VALUE,    TPM2_RC_SIZE,
                                       TPM2_RC_ECC_POINT, TPM2_RC_KEY,      TPM2_RC_INSUFFICIENT,
                                       TPM2_RC_SCHEME,    TPM2_RC_NO_RESULT};
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        if (rc_is(rc, refusals[i])) {
            return true;
        }
    }
    /* libtpms answers a seed that does not decrypt with our EK (a credential made for
     * another TPM) with TPM_RC_FAILURE, though it has not entered failure mode. A TPM in
     * failure mode refuses GetRandom too; one that still answers it refused the
     * credential. */
    if (rc_is(rc, TPM2_RC_FAILURE)) {
        TPM2B_DIGEST *rnd = NULL;
        TSS2_RC probe = Esys_GetRandom(b->ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, 1, &rnd);
        Esys_Free(rnd);
        return probe == TSS2_RC_SUCCESS;
    }
    return false;
}

static int tpm_activate_credential(rot_backend *b, const uint8_t *blob, size_t blob_len,
                                   const uint8_t *secret, size_t secret_len, pv_buf *out, pv_err *e)
{
    TPM2B_ID_OBJECT id = {0};
    TPM2B_ENCRYPTED_SECRET enc = {0};
    TPM2B_DIGEST *cert = NULL;
    ESYS_TR ek = ESYS_TR_NONE, sess = ESYS_TR_NONE;
    size_t off = 0;
    TSS2_RC rc = Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, blob_len, &off, &id);
    if (rc != TSS2_RC_SUCCESS || off != blob_len || id.size == 0) {
        return pv_err_set(e, PV_ERR_FORMAT, "the credential blob is not one TPM2B_ID_OBJECT");
    }
    off = 0;
    rc = Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(secret, secret_len, &off, &enc);
    if (rc != TSS2_RC_SUCCESS || off != secret_len || enc.size == 0) {
        return pv_err_set(e, PV_ERR_FORMAT,
                          "the credential secret is not one TPM2B_ENCRYPTED_SECRET");
    }
    int r = ek_start(b, &ek, &sess, e);
    if (r != PV_OK) {
        goto out;
    }
    rc = Esys_ActivateCredential(b->ctx, b->ak, ek, ESYS_TR_PASSWORD, sess, ESYS_TR_NONE, &id, &enc,
                                 &cert);
    if (rc != TSS2_RC_SUCCESS) {
        cert = NULL;
        r = credential_refused(b, rc)
                ? pv_err_set(e, PV_ERR_SIGNATURE,
                             "the TPM refused the credential (made for another TPM or key): %s",
                             Tss2_RC_Decode(rc))
                : tpm_fail(e, rc, "activating the credential");
        goto out;
    }
    pv_buf_set_secret(out);
    r = pv_buf_append(out, cert->buffer, cert->size);
    if (r != PV_OK) {
        pv_err_set(e, r, "no room for the credential's secret");
    }
out:
    if (cert != NULL) {
        pv_wipe(cert, sizeof(*cert));
    }
    Esys_Free(cert);
    if (sess != ESYS_TR_NONE) {
        Esys_FlushContext(b->ctx, sess);
    }
    if (ek != ESYS_TR_NONE) {
        Esys_FlushContext(b->ctx, ek);
    }
    pv_wipe(&id, sizeof(id));
    pv_wipe(&enc, sizeof(enc));
    return r;
}

static int tpm_unprovision(rot_backend *b, pv_err *e)
{
    uint8_t hash[PV_SHA256_LEN];
    int r = tpm_trust_anchor(b, hash, e);
    if (r != PV_ERR_NOT_FOUND) {
        return r == PV_OK ? pv_err_set(e, PV_ERR_LOCKED,
                                       "the trust anchor is fused: the identity stays for good")
                          : r;
    }
    provision_undo(b);
    return PV_OK;
}

const rot_backend_ops rot_tpm_ops = {
    .kind = PV_ROT_TPM,
    .unprovision = tpm_unprovision,
    .provision = tpm_provision,
    .open = tpm_open,
    .close = tpm_close,
    .identity_key = tpm_identity_key,
    .attestation_key = tpm_attestation_key,
    .sign = tpm_sign,
    .random = tpm_random,
    .pcr_extend = tpm_pcr_extend,
    .pcr_read = tpm_pcr_read,
    .boot_epoch = tpm_boot_epoch,
    .counter_read = tpm_counter_read,
    .counter_advance = tpm_counter_advance,
    .fuse_trust_anchor = tpm_fuse_trust_anchor,
    .trust_anchor = tpm_trust_anchor,
    .ek_certificate = tpm_ek_certificate,
    .attestation_key_tpm_public = tpm_attestation_key_tpm_public,
    .activate_credential = tpm_activate_credential,
    .quote = tpm_quote,
};
