/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pavise CLI: table-driven commands. Each command declares its options; the shared
 * parser checks them (unknown, repeated, missing, stray arguments) and generates --help.
 */
#ifndef PAVISE_CLI_H
#define PAVISE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "pavise/err.h"

/* Exit codes (docs/cli.md). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1,    /* the operation failed: I/O, missing file, internal error */
    CLI_EXIT_USAGE = 2,     /* the command line is wrong */
    CLI_EXIT_REJECTED = 3,  /* input refused: malformed, untrusted, tampered, unsafe, invalid */
    CLI_EXIT_DENIED = 4,    /* not logged in, or the server refused the caller (401, 403) */
    CLI_EXIT_NOT_FOUND = 5, /* the server has no such item, or it is in no tenant of ours (404) */
    CLI_EXIT_CONFLICT = 6,  /* the server refused a change that conflicts with its state (409) */
};

/* Error codes of the server commands beyond pv_code (which has no place for HTTP's
 * answers); cli_exit_code maps them to the exit codes above. */
enum {
    CLI_ERR_DENIED = -1001,
    CLI_ERR_NOT_FOUND = -1002,
    CLI_ERR_CONFLICT = -1003,
};

#define CLI_MAX_OPTS 16

typedef struct cli_opt {
    const char *name; /* long name, without "--" */
    const char *arg;  /* placeholder shown in help; NULL for a flag */
    bool required;
    const char *help;
} cli_opt;

typedef struct cli_args {
    const char *val[CLI_MAX_OPTS];
    bool json; /* --output json */
} cli_args;

typedef struct cli_cmd cli_cmd;
typedef int (*cli_run_fn)(const cli_cmd *cmd, const cli_args *args, pv_err *e);

struct cli_cmd {
    const char *group; /* NULL for a program without groups */
    const char *name;
    const char *summary;
    const char *description; /* a paragraph for --help; may be NULL */
    const cli_opt *opts;     /* terminated by an entry with name NULL */
    bool has_output;         /* accepts --output table|json */
    cli_run_fn run;
};

/* The program name help shows ("pavise", "pavise-device"). */
extern const char *cli_program;

/* Command tables of each group, terminated by an entry with name NULL. */
extern const cli_cmd cli_keys_cmds[];
extern const cli_cmd cli_image_package_cmds[];
extern const cli_cmd cli_tenant_cmds[];
extern const cli_cmd cli_role_cmds[];
extern const cli_cmd cli_device_cmds[];
/* pavise device app|sideload|image|show-attached|capability update: on the device. */
extern const cli_cmd cli_device_local_cmds[];
extern const cli_cmd cli_product_cmds[];
extern const cli_cmd cli_device_group_cmds[];
extern const cli_cmd cli_audit_cmds[];
extern const cli_cmd cli_ca_certificate_cmds[];
extern const cli_cmd cli_image_cmds[];
/* A command without a group (`pavise login`). */
extern const cli_cmd cli_login_cmd;
extern const cli_cmd cli_me_cmd;

/* The value of option name (NULL when not given). */
const char *cli_get(const cli_cmd *cmd, const cli_args *args, const char *name);
bool cli_flag(const cli_cmd *cmd, const cli_args *args, const char *name);

/* Parses argv (after the command name). PV_OK, or PV_ERR_USAGE with the reason in e;
 * *help is set when --help was given (then nothing else is checked). */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_args *args, bool *help, pv_err *e);
void cli_print_help(const cli_cmd *cmd);
/* The main() of a program with one command (a daemon): --version, the options, --help,
 * then cmd->run; an error is printed as "<program>: <message>". The exit status: 0, 2 for
 * a usage error, 1 for any other. */
int cli_main(const cli_cmd *cmd, const char *program, const char *version, int argc, char **argv);

/* Maps a pv_code to an exit code. */
int cli_exit_code(int code);

/* Prints an object as "Key:  value" lines (table) or JSON. Takes ownership of obj.
 * fields lists the JSON keys to show in table mode with their labels, as pairs
 * {key, label, key, label, ..., NULL}. */
int cli_print_object(bool json, json_t *obj, const char *const *fields);

/* Prints a list: a table with one column per {key, header} pair of columns
 * ({key, header, key, header, ..., NULL}), aligned, headers first, text escaped as by
 * cli_put_escaped (null as "-", booleans as yes/no); or, in JSON, the array as it is.
 * Takes ownership of items (a JSON array). */
int cli_print_table(bool json, json_t *items, const char *const *columns);

/* Writes s with control characters (C0, DEL, C1) shown as escapes, so text from an
 * untrusted file cannot drive the terminal or forge lines. */
void cli_put_escaped(FILE *out, const char *s);

/* Parses a positive whole number of days (1..36500). */
int cli_parse_days(const char *s, const char *what, long *days, pv_err *e);

/* Parses a whole decimal number from 0 to max (no sign, no spaces); PV_ERR_USAGE naming
 * what otherwise. */
int cli_parse_uint(const char *s, const char *what, uint64_t max, uint64_t *out, pv_err *e);

#endif
