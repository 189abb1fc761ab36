/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pavise/json.h"
#include "pavise/log.h"

static int opt_index(const cli_cmd *cmd, const char *name, size_t len)
{
    for (int i = 0; cmd->opts[i].name != NULL; i++) {
        if (strlen(cmd->opts[i].name) == len && strncmp(cmd->opts[i].name, name, len) == 0) {
            return i;
        }
    }
    return -1;
}

const char *cli_get(const cli_cmd *cmd, const cli_args *args, const char *name)
{
    int i = opt_index(cmd, name, strlen(name));
    return i < 0 ? NULL : args->val[i];
}

bool cli_flag(const cli_cmd *cmd, const cli_args *args, const char *name)
{
    return cli_get(cmd, args, name) != NULL;
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_args *args, bool *help, pv_err *e)
{
    memset(args, 0, sizeof(*args));
    *help = false;
    bool output_seen = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *help = true;
            return PV_OK;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            return pv_err_set(e, PV_ERR_USAGE, "unexpected argument '%s'", a);
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        if (cmd->has_output && len == 6 && strncmp(name, "output", 6) == 0) {
            if (value == NULL && i + 1 < argc) {
                value = argv[++i];
            }
            if (value == NULL || (strcmp(value, "table") != 0 && strcmp(value, "json") != 0)) {
                return pv_err_set(e, PV_ERR_USAGE, "--output takes 'table' or 'json'");
            }
            if (output_seen) {
                return pv_err_set(e, PV_ERR_USAGE, "--output given twice");
            }
            output_seen = true;
            args->json = strcmp(value, "json") == 0;
            continue;
        }
        int k = opt_index(cmd, name, len);
        if (k < 0) {
            return pv_err_set(e, PV_ERR_USAGE, "unknown option '--%.*s'", (int)len, name);
        }
        if (args->val[k] != NULL) {
            return pv_err_set(e, PV_ERR_USAGE, "--%s given twice", cmd->opts[k].name);
        }
        if (cmd->opts[k].arg == NULL) {
            if (value != NULL) {
                return pv_err_set(e, PV_ERR_USAGE, "--%s takes no value", cmd->opts[k].name);
            }
            args->val[k] = "";
            continue;
        }
        if (value == NULL) {
            if (i + 1 >= argc) {
                return pv_err_set(e, PV_ERR_USAGE, "--%s needs a value (%s)", cmd->opts[k].name,
                                  cmd->opts[k].arg);
            }
            value = argv[++i];
        }
        if (value[0] == '\0') {
            return pv_err_set(e, PV_ERR_USAGE, "--%s: empty value", cmd->opts[k].name);
        }
        args->val[k] = value;
    }
    for (int k = 0; cmd->opts[k].name != NULL; k++) {
        if (cmd->opts[k].required && args->val[k] == NULL) {
            return pv_err_set(e, PV_ERR_USAGE, "missing --%s %s", cmd->opts[k].name,
                              cmd->opts[k].arg ? cmd->opts[k].arg : "");
        }
    }
    return PV_OK;
}

/* Prints text wrapped at width columns. */
static void print_wrapped(const char *text, int width)
{
    int col = 0;
    const char *p = text;
    while (*p != '\0') {
        const char *sp = strchr(p, ' ');
        int n = sp ? (int)(sp - p) : (int)strlen(p);
        if (col > 0 && col + 1 + n > width) {
            putchar('\n');
            col = 0;
        } else if (col > 0) {
            putchar(' ');
            col++;
        }
        printf("%.*s", n, p);
        col += n;
        p += n;
        while (*p == ' ') {
            p++;
        }
    }
    putchar('\n');
}

const char *cli_program = "pavise";

int cli_main(const cli_cmd *cmd, const char *program, const char *version, int argc, char **argv)
{
    cli_args args;
    bool help = false;
    pv_err e;
    pv_err_clear(&e);
    cli_program = program;
    pv_log_init(PV_LOG_INFO, false, NULL, program);
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("%s %s\n", program, version);
        return 0;
    }
    if (cli_parse(cmd, argc - 1, argv + 1, &args, &help, &e) != PV_OK) {
        fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", program, pv_err_msg(&e), program);
        return 2;
    }
    if (help) {
        cli_print_help(cmd);
        return 0;
    }
    int r = cmd->run(cmd, &args, &e);
    if (r != PV_OK) {
        fprintf(stderr, "%s: %s\n", program, pv_err_msg(&e));
        return r == PV_ERR_USAGE ? 2 : 1;
    }
    return 0;
}

void cli_print_help(const cli_cmd *cmd)
{
    /* A program without commands (pavised) has an empty name. */
    printf("Usage: %s%s%s%s%s", cli_program, cmd->group != NULL ? " " : "",
           cmd->group != NULL ? cmd->group : "", cmd->name[0] != '\0' ? " " : "", cmd->name);
    for (int k = 0; cmd->opts[k].name != NULL; k++) {
        const cli_opt *o = &cmd->opts[k];
        printf(" %s--%s%s%s%s", o->required ? "" : "[", o->name, o->arg ? " " : "",
               o->arg ? o->arg : "", o->required ? "" : "]");
    }
    if (cmd->has_output) {
        printf(" [--output table|json]");
    }
    printf("\n\n%s.\n", cmd->summary);
    if (cmd->description != NULL) {
        putchar('\n');
        print_wrapped(cmd->description, 88);
    }
    printf("\nOptions:\n");
    for (int k = 0; cmd->opts[k].name != NULL; k++) {
        const cli_opt *o = &cmd->opts[k];
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-28s %s%s\n", left, o->help, o->required ? " (required)" : "");
    }
    if (cmd->has_output) {
        printf("  %-28s %s\n", "--output table|json", "output format (default: table)");
    }
    printf("  %-28s %s\n", "--help", "show this help");
}

int cli_exit_code(int code)
{
    switch (code) {
    case PV_OK:
        return CLI_EXIT_OK;
    case PV_ERR_USAGE:
        return CLI_EXIT_USAGE;
    case PV_ERR_FORMAT:
    case PV_ERR_TOO_LARGE:
    case PV_ERR_TRUNCATED:
    case PV_ERR_UNSUPPORTED:
    case PV_ERR_SIGNATURE:
    case PV_ERR_UNTRUSTED:
    case PV_ERR_EXPIRED:
    case PV_ERR_DIGEST:
    case PV_ERR_UNSAFE:
    case PV_ERR_MANIFEST:
    case PV_ERR_ROLLBACK:
    case PV_ERR_LOCKED:
        return CLI_EXIT_REJECTED;
    case CLI_ERR_DENIED:
        return CLI_EXIT_DENIED;
    case CLI_ERR_NOT_FOUND:
        return CLI_EXIT_NOT_FOUND;
    case CLI_ERR_CONFLICT:
        return CLI_EXIT_CONFLICT;
    default:
        return CLI_EXIT_FAILED;
    }
}

void cli_put_escaped(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\x%02x", *p);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            fprintf(out, "\\u%04x", p[1]); /* C1 controls, UTF-8 encoded */
            p++;
        } else {
            fputc(*p, out);
        }
    }
}

static void print_value(const json_t *v)
{
    if (json_is_string(v)) {
        /* Strings may come from an untrusted package: no terminal control sequences. */
        cli_put_escaped(stdout, json_string_value(v));
    } else if (json_is_integer(v)) {
        printf("%lld", (long long)json_integer_value(v));
    } else if (json_is_true(v)) {
        fputs("yes", stdout);
    } else if (json_is_false(v)) {
        fputs("no", stdout);
    } else if (json_is_null(v)) {
        fputs("-", stdout);
    } else if (json_is_array(v)) {
        if (json_array_size(v) == 0) {
            fputs("-", stdout);
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0) {
                fputs(", ", stdout);
            }
            print_value(json_array_get(v, i));
        }
    } else {
        char *s = json_dumps(v, JSON_COMPACT);
        fputs(s != NULL ? s : "?", stdout);
        free(s);
    }
}

int cli_print_object(bool json, json_t *obj, const char *const *fields)
{
    int r = PV_OK;
    if (obj == NULL) {
        return PV_ERR_NOMEM;
    }
    if (json) {
        r = pv_json_print(obj);
    } else {
        size_t width = 0;
        for (size_t i = 0; fields[i] != NULL; i += 2) {
            size_t n = strlen(fields[i + 1]);
            width = n > width ? n : width;
        }
        for (size_t i = 0; fields[i] != NULL; i += 2) {
            /* "caps.peripherals" reaches into a nested object. */
            const json_t *v = obj;
            char path[128];
            snprintf(path, sizeof(path), "%s", fields[i]);
            char *save = NULL;
            for (char *tok = strtok_r(path, ".", &save); tok != NULL && v != NULL;
                 tok = strtok_r(NULL, ".", &save)) {
                v = json_object_get(v, tok);
            }
            printf("%-*s  ", (int)width + 1, fields[i + 1]);
            print_value(v != NULL ? v : json_null());
            putchar('\n');
        }
    }
    json_decref(obj);
    return r;
}

/* A cell as text (escaped like print_value), malloc'd; NULL on out of memory. */
static char *cell_text(const json_t *v)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        return NULL;
    }
    if (v == NULL || json_is_null(v)) {
        fputs("-", f);
    } else if (json_is_string(v)) {
        cli_put_escaped(f, json_string_value(v));
    } else if (json_is_integer(v)) {
        fprintf(f, "%lld", (long long)json_integer_value(v));
    } else if (json_is_boolean(v)) {
        fputs(json_is_true(v) ? "yes" : "no", f);
    } else {
        char *s = json_dumps(v, JSON_COMPACT);
        cli_put_escaped(f, s != NULL ? s : "?");
        free(s);
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* Columns on a terminal: UTF-8 continuation bytes take none (wide characters are
 * rare in names and only misalign their own row). */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        n += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return n;
}

static void print_row(char *const *cells, const size_t *width, size_t ncols)
{
    for (size_t k = 0; k < ncols; k++) {
        fputs(cells[k], stdout);
        if (k + 1 < ncols) {
            /* The last column is not padded: no trailing spaces. */
            printf("%*s", (int)(width[k] - text_width(cells[k]) + 2), "");
        }
    }
    putchar('\n');
}

int cli_print_table(bool json, json_t *items, const char *const *columns)
{
    int r = PV_ERR_NOMEM;
    char **cells = NULL;
    size_t ncols = 0, nrows = 0, ncells = 0;
    size_t width[CLI_MAX_OPTS] = {0};
    if (items == NULL || !json_is_array(items)) {
        json_decref(items);
        return PV_ERR_INVALID_ARG;
    }
    if (json) {
        r = pv_json_print(items);
        json_decref(items);
        return r;
    }
    while (columns[2 * ncols] != NULL && ncols < CLI_MAX_OPTS) {
        ncols++;
    }
    nrows = json_array_size(items) + 1;
    if (nrows > SIZE_MAX / ncols / sizeof(char *)) {
        goto out;
    }
    cells = calloc(nrows * ncols, sizeof(char *));
    if (cells == NULL) {
        goto out;
    }
    for (size_t row = 0; row < nrows; row++) {
        for (size_t k = 0; k < ncols; k++) {
            const json_t *item = row > 0 ? json_array_get(items, row - 1) : NULL;
            char *t = row == 0 ? strdup(columns[2 * k + 1])
                               : cell_text(json_object_get(item, columns[2 * k]));
            if (t == NULL) {
                goto out;
            }
            cells[ncells++] = t;
            size_t w = text_width(t);
            width[k] = w > width[k] ? w : width[k];
        }
    }
    for (size_t row = 0; row < nrows; row++) {
        print_row(cells + row * ncols, width, ncols);
    }
    r = PV_OK;
out:
    for (size_t i = 0; i < ncells; i++) {
        free(cells[i]);
    }
    free(cells);
    json_decref(items);
    return r;
}

int cli_parse_days(const char *s, const char *what, long *days, pv_err *e)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 36500) {
        return pv_err_set(e, PV_ERR_USAGE, "%s: '%s' is not a number of days (1..36500)", what, s);
    }
    *days = v;
    return PV_OK;
}

int cli_parse_uint(const char *s, const char *what, uint64_t max, uint64_t *out, pv_err *e)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || errno != 0 || *end != '\0' || v > max) {
        return pv_err_set(e, PV_ERR_USAGE, "%s: '%s' is not a whole number from 0 to %llu", what, s,
                          (unsigned long long)max);
    }
    *out = v;
    return PV_OK;
}
