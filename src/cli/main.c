/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise: the command-line tool for operators and app developers.
 *   pavise [--log-level LEVEL] [--log-json] <group> <command> [options]
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pavise/log.h"

#ifndef PAVISE_VERSION
#define PAVISE_VERSION "0.1.0"
#endif

typedef struct cli_group {
    const char *name;
    const char *summary;
    const cli_cmd *cmds; /* the group's commands, or NULL for a command of its own */
    const cli_cmd *single;
} cli_group;

static const cli_group groups[] = {
    {"keys", "Create keys and certificates for signing images", cli_keys_cmds, NULL},
    {"image-package", "Pack, inspect, verify and extract signed image packages",
     cli_image_package_cmds, NULL},
    {"login", "Log in to a Pavise server with a one-time enrollment code", NULL, &cli_login_cmd},
    {"me", "Show who you are logged in as, and your roles", NULL, &cli_me_cmd},
    {"tenant", "Create, list, show and select tenants", cli_tenant_cmds, NULL},
    {"role", "Grant, list and remove operators' roles; invite operators", cli_role_cmds, NULL},
    {"product", "Create and manage products", cli_product_cmds, NULL},
    {"device-group", "Create and manage a product's device groups", cli_device_group_cmds, NULL},
    {"device", "Claim, place, inspect and release devices", cli_device_cmds, NULL},
    /* The same group, on the device itself (pavised's local API). */
    {"device", "Run, sideload and inspect apps on this device", cli_device_local_cmds, NULL},
    {"audit", "Read the tenant's audit log", cli_audit_cmds, NULL},
    {"ca-certificate", "List, download and rotate the tenant's CA certificates",
     cli_ca_certificate_cmds, NULL},
    {"image", "Register, list and revoke the tenant's application images", cli_image_cmds, NULL},
    {NULL, NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: pavise [--log-level debug|info|warn|error] [--log-json] <group> <command> "
                 "[options]\n\n"
                 "Pavise secures connected devices from chip to cloud.\n\nCommand groups:\n");
    for (const cli_group *g = groups; g->name != NULL; g++) {
        if (g == groups || strcmp(g[-1].name, g->name) != 0) {
            fprintf(out, "  %-16s %s\n", g->name, g->summary);
        }
    }
    fprintf(out, "\nRun 'pavise <group> --help' for the commands of a group, and\n"
                 "'pavise <group> <command> --help' for the options of a command.\n"
                 "Exit codes: 0 success, 1 failure, 2 usage error, 3 input rejected,\n"
                 "4 not logged in or denied, 5 not found, 6 conflict.\n");
}

/* A group may have several tables (entries of the same name, next to each other: the
 * device group has the service's commands and the device's own). */
static void group_usage(const cli_group *g, FILE *out)
{
    fprintf(out, "Usage: pavise %s <command> [options]\n\n%s.\n\nCommands:\n", g->name, g->summary);
    for (const cli_group *t = g; t->name != NULL && strcmp(t->name, g->name) == 0; t++) {
        for (const cli_cmd *c = t->cmds; c != NULL && c->name != NULL; c++) {
            fprintf(out, "  %-20s %s\n", c->name, c->summary);
        }
    }
}

/* The command argv starts with: its name is one word ("list") or two ("app start"). */
static const cli_cmd *find_command(const cli_group *g, int argc, char **argv, int *words)
{
    for (const cli_group *t = g; t->name != NULL && strcmp(t->name, g->name) == 0; t++) {
        for (const cli_cmd *c = t->cmds; c != NULL && c->name != NULL; c++) {
            const char *space = strchr(c->name, ' ');
            if (space == NULL && strcmp(argv[0], c->name) == 0) {
                *words = 1;
                return c;
            }
            if (space != NULL && argc >= 2 && strlen(argv[0]) == (size_t)(space - c->name) &&
                strncmp(argv[0], c->name, (size_t)(space - c->name)) == 0 &&
                strcmp(argv[1], space + 1) == 0) {
                *words = 2;
                return c;
            }
        }
    }
    return NULL;
}

/* "pavise tenant list" or "pavise login" in messages. */
static void put_command(const cli_cmd *cmd, FILE *out)
{
    fprintf(out, "pavise %s%s%s", cmd->group != NULL ? cmd->group : "",
            cmd->group != NULL ? " " : "", cmd->name);
}

static int run_command(const cli_cmd *cmd, int argc, char **argv)
{
    cli_args args;
    bool help = false;
    pv_err e;
    pv_err_clear(&e);
    int r = cli_parse(cmd, argc, argv, &args, &help, &e);
    if (r != PV_OK) {
        put_command(cmd, stderr);
        fputs(": ", stderr);
        cli_put_escaped(stderr, pv_err_msg(&e));
        fputs("\nRun '", stderr);
        put_command(cmd, stderr);
        fputs(" --help' for usage.\n", stderr);
        return CLI_EXIT_USAGE;
    }
    if (help) {
        cli_print_help(cmd);
        return CLI_EXIT_OK;
    }
    r = cmd->run(cmd, &args, &e);
    if (r != PV_OK) {
        fflush(stdout);
        fputs("pavise: error: ", stderr);
        cli_put_escaped(stderr, pv_err_msg(&e));
        fputc('\n', stderr);
    }
    return cli_exit_code(r);
}

int main(int argc, char **argv)
{
    pv_log_level level = PV_LOG_WARN;
    bool log_json = false;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("pavise %s\n", PAVISE_VERSION);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--log-json") == 0) {
            log_json = true;
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc &&
                   pv_log_level_parse(argv[i + 1], &level) == PV_OK) {
            i++;
        } else {
            fprintf(stderr, "pavise: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    pv_log_init(level, log_json, NULL, "pavise");
    if (i >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const cli_group *first = NULL;
    for (const cli_group *g = groups; g->name != NULL; g++) {
        if (strcmp(argv[i], g->name) == 0) {
            first = g;
            break;
        }
    }
    if (first != NULL) {
        if (first->single != NULL) {
            return run_command(first->single, argc - i - 1, argv + i + 1);
        }
        if (i + 1 >= argc || strcmp(argv[i + 1], "--help") == 0 || strcmp(argv[i + 1], "-h") == 0) {
            group_usage(first, i + 1 >= argc ? stderr : stdout);
            return i + 1 >= argc ? CLI_EXIT_USAGE : CLI_EXIT_OK;
        }
        int words = 0;
        const cli_cmd *c = find_command(first, argc - i - 1, argv + i + 1, &words);
        if (c != NULL) {
            return run_command(c, argc - i - 1 - words, argv + i + 1 + words);
        }
        fprintf(stderr, "pavise %s: unknown command '%s'\n\n", first->name, argv[i + 1]);
        group_usage(first, stderr);
        return CLI_EXIT_USAGE;
    }
    fprintf(stderr, "pavise: unknown command group '%s'\n\n", argv[i]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
