/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-server capability-signer set|show: the key and chain with which the service
 * signs device capability files (capsigner.h).
 */
#ifndef PAVISE_SERVER_CMD_CAPABILITY_H
#define PAVISE_SERVER_CMD_CAPABILITY_H

#include "cli.h"

extern const cli_opt cmd_capability_signer_set_opts[];
extern const cli_opt cmd_capability_signer_show_opts[];

int cmd_capability_signer_set(const cli_cmd *cmd, const cli_args *args, pv_err *e);
int cmd_capability_signer_show(const cli_cmd *cmd, const cli_args *args, pv_err *e);

/* The entries of pavise-server's command table. */
#define CMD_CAPABILITY_ENTRIES                                                                     \
    {"capability-signer",                                                                          \
     "set",                                                                                        \
     "Install the key that signs devices' development capability files",                           \
     "The certificate chain (leaf first) must lead to the update root fused into the devices, "    \
     "and its leaf must carry the Pavise capability-signing extended key usage (OID "              \
     "2.25.234793168919905953341970457922793849159) and not codeSigning. The key and chain are "   \
     "copied into the data directory (the key with mode 0600), replacing the signer there.",       \
     cmd_capability_signer_set_opts,                                                               \
     true,                                                                                         \
     cmd_capability_signer_set},                                                                   \
    {                                                                                              \
        "capability-signer", "show", "Show the installed capability signer", NULL,                 \
            cmd_capability_signer_show_opts, true, cmd_capability_signer_show                      \
    }

#endif
