/* SPDX-License-Identifier: Apache-2.0 */
#include "pavise/platform.h"

#include <stdatomic.h>
#include <time.h>

static _Atomic int64_t time_override;

int64_t pv_time_now(void)
{
    int64_t t = atomic_load(&time_override);
    if (t != 0) {
        return t;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

void pv_time_set_override(int64_t t)
{
    atomic_store(&time_override, t);
}
