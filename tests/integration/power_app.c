/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test app for the power actions: asks the runtime for each action named on its command
 * line (reboot, power-down, low-power), in order, logs each answer, then waits for SIGTERM;
 * "wait" between them waits a second.
 *
 *   power-app ACTION|wait...
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pavise/app.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int action;
    } actions[] = {
        {"reboot", PV_APP_POWER_REBOOT},
        {"power-down", PV_APP_POWER_POWER_DOWN},
        {"low-power", PV_APP_POWER_PROFILE_LOW},
    };
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "wait") == 0) {
            sleep(1);
            continue;
        }
        int action = 0;
        for (size_t j = 0; j < sizeof(actions) / sizeof(actions[0]); j++) {
            if (strcmp(argv[i], actions[j].name) == 0) {
                action = actions[j].action;
            }
        }
        if (action == 0) {
            fprintf(stderr, "usage: power-app [reboot|power-down|low-power|wait]...\n");
            return 2;
        }
        int r = pv_app_power(action);
        pv_app_log(PV_APP_LOG_INFO, "power %s: %s", argv[i], pv_app_strerror(r));
    }
    while (!stop) {
        pause();
    }
    pv_app_log(PV_APP_LOG_INFO, "stopping");
    return 0;
}
