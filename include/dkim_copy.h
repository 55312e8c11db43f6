/*
 * dkim_copy.h - the DKIM key files' bytes, as read, one after another,
 * for the queue runner at a reload (it can no longer read the files).
 */
#ifndef FERRY_DKIM_COPY_H
#define FERRY_DKIM_COPY_H

#include <stddef.h>

#include "config.h"

/* The largest key file copied: an RSA key of 16384 bits is ~13 KiB. */
#define DKIM_COPY_FILE_MAX (64 * 1024)

/* Appends every dkim_key's key_file, in configuration order, to fd (a
 * newline after a file that does not end with one, so that the PEM
 * blocks stay apart).  Nothing is parsed here.  0, or -1 with err naming
 * the key and its file. */
int dkim_keys_copy(const struct ferry_config *cfg, int fd, char *err,
    size_t errlen);

#endif
