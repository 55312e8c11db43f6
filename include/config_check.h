/*
 * config_check.h - every check "ferryd -n" makes on a configuration file,
 * in one place for ferryd -n and "ferryctl check"/"ferryctl reload".
 */
#ifndef FERRY_CONFIG_CHECK_H
#define FERRY_CONFIG_CHECK_H

#include <stddef.h>
#include "config.h"

/* Loads path (syntax, ranges, files it names) and checks what the
 * workers will load from it: certificates, keys, the users file.  The
 * configuration (config_free it), or NULL with err naming the file and
 * line. */
struct ferry_config *config_check(const char *path, char *err,
    size_t errlen);
/* The same for text read from path already (NULL: read path), and the
 * DKIM keys' bytes, as the queue runner gets them at a reload, written
 * to keys_fd (-1: to a memfd of its own, dropped) and parsed from it. */
struct ferry_config *config_check_text(const char *path, const char *text,
    int keys_fd, char *err, size_t errlen);

#endif
