/*
 * anvil_figures.h - what "ferryctl status" shows of ferry-anvil, and the
 * two notes that carry it (anvil_figures.c encodes and strictly decodes
 * them; the processes only send and receive).
 *
 * ferry-anvil tells the master its counts now (IMSG_NOTE_ANVIL_COUNTS,
 * once a second at most and only when they changed: connections held by
 * all workers, clients in its table); the master adds what it knows
 * itself - whether anvil runs, its stress mode and how often it began
 * (IMSG_NOTE_ANVIL_STRESS), the workers' limit hits (worker_counters.h)
 * - and passes the whole to the queue runner (IMSG_NOTE_ANVIL), which
 * answers ferryctl.  Counts start over when anvil is restarted.
 */
#ifndef FERRY_ANVIL_FIGURES_H
#define FERRY_ANVIL_FIGURES_H

#include <stdint.h>
#include "ipc.h"

enum anvil_hit {
	ANVIL_HIT_CONNECTIONS,          /* limits.max_connections */
	ANVIL_HIT_CLIENT_CONNECTIONS,   /* max_connections_per_client */
	ANVIL_HIT_CONNECTION_RATE,
	ANVIL_HIT_MESSAGE_RATE,
	ANVIL_HIT_AUTH_LOCKOUT,
	ANVIL_HIT_MAX
};

extern const char *const anvil_hit_names[ANVIL_HIT_MAX];

struct anvil_figures {
	uint8_t running;            /* the master has an anvil process */
	uint8_t stress;             /* stress mode is on */
	uint64_t stress_entered;    /* times it began since ferry started */
	uint32_t connections;       /* connections held now */
	uint32_t clients;           /* client addresses in its table */
	uint64_t hits[ANVIL_HIT_MAX];   /* limits met since ferry started */
};

/* anvil -> master: connections and clients (a frame begun as
 * IMSG_NOTE_ANVIL_COUNTS gets the fields). */
void anvil_counts_add(struct ipc_out *m, uint32_t connections,
    uint32_t clients);
int anvil_counts_take(struct ipc_in *in, uint32_t *connections,
    uint32_t *clients);
/* master -> runner: the whole (IMSG_NOTE_ANVIL); -1 when it does not
 * decode (nothing of f is trusted then). */
void anvil_figures_add(struct ipc_out *m, const struct anvil_figures *f);
int anvil_figures_take(struct ipc_in *in, struct anvil_figures *f);

#endif
