/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pavise-server image-root add|list|remove and os-image add|list|revoke: the image roots
 * every registered image must chain to, and the service's OS images (images.h).
 */
#ifndef PAVISE_SERVER_CMD_IMAGES_H
#define PAVISE_SERVER_CMD_IMAGES_H

#include "cli.h"

extern const cli_opt cmd_image_root_add_opts[];
extern const cli_opt cmd_image_root_remove_opts[];
extern const cli_opt cmd_os_image_add_opts[];
extern const cli_opt cmd_os_image_revoke_opts[];
extern const cli_opt cmd_images_db_opts[];

int cmd_image_root_add(const cli_cmd *cmd, const cli_args *args, pv_err *e);
int cmd_image_root_list(const cli_cmd *cmd, const cli_args *args, pv_err *e);
int cmd_image_root_remove(const cli_cmd *cmd, const cli_args *args, pv_err *e);
int cmd_os_image_add(const cli_cmd *cmd, const cli_args *args, pv_err *e);
int cmd_os_image_list(const cli_cmd *cmd, const cli_args *args, pv_err *e);
int cmd_os_image_revoke(const cli_cmd *cmd, const cli_args *args, pv_err *e);

/* The entries of pavise-server's command table. */
#define CMD_IMAGES_ENTRIES                                                                         \
    {"image-root",                                                                                 \
     "add",                                                                                        \
     "Trust a CA to sign images (application and OS)",                                             \
     "Images are registered only when their signer's chain leads to an image root. With "          \
     "--development, images signed under this root are development (sideloaded) images, "          \
     "accepted only on devices in development mode.",                                              \
     cmd_image_root_add_opts,                                                                      \
     true,                                                                                         \
     cmd_image_root_add},                                                                          \
        {"image-root",       "list", "List the image roots", NULL,                                 \
         cmd_images_db_opts, true,   cmd_image_root_list},                                         \
        {"image-root",                                                                             \
         "remove",                                                                                 \
         "Stop trusting an image root for new images",                                             \
         "Images registered before stay registered; revoke them to stop devices that run them "    \
         "from passing attestation.",                                                              \
         cmd_image_root_remove_opts,                                                               \
         true,                                                                                     \
         cmd_image_root_remove},                                                                   \
        {"os-image",                                                                               \
         "add",                                                                                    \
         "Register an OS image of one of the service's feeds",                                     \
         "The package is verified (signer chain to an image root, signature, payload digest) "     \
         "and its image ID, manifest digest and feed are recorded.",                               \
         cmd_os_image_add_opts,                                                                    \
         true,                                                                                     \
         cmd_os_image_add},                                                                        \
        {"os-image",         "list", "List the OS images", NULL,                                   \
         cmd_images_db_opts, true,   cmd_os_image_list},                                           \
    {                                                                                              \
        "os-image", "revoke", "Revoke an OS image: devices that run it fail attestation", NULL,    \
            cmd_os_image_revoke_opts, true, cmd_os_image_revoke                                    \
    }

#endif
