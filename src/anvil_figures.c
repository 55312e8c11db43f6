/*
 * anvil_figures.c - encodes and decodes the anvil figures' notes (see
 * anvil_figures.h).  Decoding is strict: every field present, booleans
 * 0 or 1, nothing left over; a note that fails is a lying peer's.
 */
#include "autoconfig.h"

#include <string.h>

#include "anvil_figures.h"

const char *const anvil_hit_names[ANVIL_HIT_MAX] = {
	"connections", "client_connections", "connection_rate",
	"message_rate", "auth_lockout"
};

void
anvil_counts_add(struct ipc_out *m, uint32_t connections, uint32_t clients)
{
	ipc_add_u32(m, connections);
	ipc_add_u32(m, clients);
}

int
anvil_counts_take(struct ipc_in *in, uint32_t *connections,
    uint32_t *clients)
{
	if (ipc_get_u32(in, connections) < 0 || ipc_get_u32(in, clients) < 0 ||
	    ipc_end(in) < 0)
		return -1;
	return 0;
}

void
anvil_figures_add(struct ipc_out *m, const struct anvil_figures *f)
{
	size_t i;

	ipc_add_u8(m, f->running);
	ipc_add_u8(m, f->stress);
	ipc_add_u64(m, f->stress_entered);
	ipc_add_u32(m, f->connections);
	ipc_add_u32(m, f->clients);
	for (i = 0; i < ANVIL_HIT_MAX; i++)
		ipc_add_u64(m, f->hits[i]);
}

int
anvil_figures_take(struct ipc_in *in, struct anvil_figures *f)
{
	struct anvil_figures g;
	size_t i;

	memset(&g, 0, sizeof(g));
	if (ipc_get_u8(in, &g.running) < 0 || ipc_get_u8(in, &g.stress) < 0 ||
	    g.running > 1 || g.stress > 1 ||
	    ipc_get_u64(in, &g.stress_entered) < 0 ||
	    ipc_get_u32(in, &g.connections) < 0 ||
	    ipc_get_u32(in, &g.clients) < 0)
		return -1;
	for (i = 0; i < ANVIL_HIT_MAX; i++)
		if (ipc_get_u64(in, &g.hits[i]) < 0)
			return -1;
	if (ipc_end(in) < 0)
		return -1;
	*f = g;
	return 0;
}
