/*
 * control_proto.h - what ferryctl and the queue runner say to each other
 * over the control socket, one request and one answer per connection.
 *
 *   ferryctl -> runner  CTL_REQUEST     u32 count, then count strings:
 *                                       the command's words (at most
 *                                       CONTROL_REQUEST_MAX bytes in all)
 *   runner -> ferryctl  CTL_ANSWER      data: a piece of the JSON answer,
 *                                       at most CONTROL_ANSWER_PIECE bytes
 *   runner -> ferryctl  CTL_ANSWER_END  (no fields) - the pieces joined
 *                                       are the whole document; the runner
 *                                       closes
 *
 * Each side reads the other through a channel (channel.h) whose table
 * holds only these types; a frame over the cap, of another type or that
 * does not decode drops the peer.
 */
#ifndef FERRY_CONTROL_PROTO_H
#define FERRY_CONTROL_PROTO_H

#include <stddef.h>
#include "ipc.h"

#define CONTROL_REQUEST_MAX 512       /* a CTL_REQUEST's payload */
#define CONTROL_ANSWER_PIECE 65536    /* a CTL_ANSWER's data */
/* A CTL_ANSWER's payload: the data field's length word and its bytes. */
#define CONTROL_ANSWER_FRAME_MAX (4 + CONTROL_ANSWER_PIECE)

/* A CTL_REQUEST's fields: the count, then the words. */
void control_request_encode(struct ipc_out *m, int argc, char *const *argv);
/* Strict: 0 with the non-empty words (malloc'd, NUL-free; the first max
 * of them in words[], *nw counting them all), or -1 when the payload
 * does not decode (nothing kept). */
int control_request_decode(struct ipc_in *in, char **words, size_t max,
    size_t *nw);

#endif
