/*
 * queue_salvage.h - rebuilding a damaged queue database from what can be
 * read (queue_salvage.c), for "ferryctl queue salvage".
 */
#ifndef FERRY_QUEUE_SALVAGE_H
#define FERRY_QUEUE_SALVAGE_H

#include <stddef.h>
#include <stdint.h>

struct queue_salvage_result {
	char damaged[4200];       /* where the damaged file was kept */
	int64_t found;            /* messages the recovery could read */
	int64_t messages;         /* of them, whole: in the new queue */
	int64_t recipients;       /* their pending recipients */
	int64_t damaged_spots;    /* unreadable stretches stepped over */
	int64_t history;          /* delivery history messages kept */
	int page1_rebuilt;        /* page 1 was lost and made again */
};

/* Replaces the database at dbpath (which no process may have open) with
 * a fresh one holding every whole message that could be read; the
 * damaged file stays as res->damaged.  0, or -1 with the reason in err
 * and the damaged file back at dbpath. */
int queue_salvage(const char *dbpath, struct queue_salvage_result *res,
    char *err, size_t errlen);

#endif
