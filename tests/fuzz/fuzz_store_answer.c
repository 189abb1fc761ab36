/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavised's reading of pavise-store's "load" answer (src/device/storeclient.c,
 * sc_load_answer, and the app descriptions of src/device/appstore_table.c) on arbitrary
 * bytes. Seeds in tests/fuzz/corpus/store_answer/.
 *
 * For every input that parses as a JSON object:
 *   - sc_load_answer either refuses it with a message or gives a table whose entries all
 *     fit (as_check_fits) and each of whose descriptions reads back to the same entry.
 */
#include <stdlib.h>
#include <string.h>

#include "../../src/device/appstore_table.c"
#include "../../src/device/helperproc.c"
#include "../../src/device/privdrop.c"
#include "../../src/device/storeclient.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define APPS_DIR "/state/apps"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *ans = NULL;
    pv_err e;
    pv_err_clear(&e);
    if (size > 1 << 20 || pv_json_parse((const char *)data, size, &ans, &e) != PV_OK) {
        return 0;
    }
    sc_device dev;
    as_store *s = NULL;
    memset(&dev, 0, sizeof(dev));
    if (!json_is_object(ans) || sc_load_answer(ans, APPS_DIR, &dev, &s, &e) != PV_OK) {
        if (s != NULL || (json_is_object(ans) && pv_err_msg(&e)[0] == '\0')) {
            abort(); /* a refusal leaves nothing and says why */
        }
        json_decref(ans);
        return 0;
    }
    for (size_t i = 0; i < as_count(s); i++) {
        as_app *a = as_get(s, i), *b = NULL;
        json_t *o = as_app_to_json(a);
        if (as_check_fits(s, a, &e) != PV_OK || o == NULL || as_app_from_json(o, &b, &e) != PV_OK ||
            strcmp(a->cid, b->cid) != 0 || strcmp(a->image_id, b->image_id) != 0 ||
            strcmp(a->image_dir, b->image_dir) != 0 || a->uid != b->uid || a->floor != b->floor ||
            a->installed_at != b->installed_at || a->development != b->development) {
            abort();
        }
        as_app_free(b);
        json_decref(o);
    }
    as_close(s);
    json_decref(ans);
    return 0;
}
