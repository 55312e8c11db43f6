/*
 * envelope.c - the envelope a worker hands to the queue runner, and its
 * wire form inside IMSG_TX_BEGIN.
 *
 * Security stance: the runner decodes envelopes from internet-facing
 * workers; every field is length-checked and the recipient count bounded,
 * and any malformation rejects the whole frame.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "util.h"

void
envelope_init(struct envelope *e)
{
	memset(e, 0, sizeof(*e));
	e->size_declared = -1;
}

void
envelope_free(struct envelope *e)
{
	size_t i;

	free(e->sender);
	free(e->client_addr);
	free(e->client_name);
	free(e->helo);
	free(e->protocol);
	free(e->auth_user);
	free(e->dsn_envid);
	for (i = 0; i < e->nrcpts; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].orcpt);
	}
	free(e->rcpts);
	envelope_init(e);
}

void
envelope_add_rcpt(struct envelope *e, const char *addr, uint32_t notify,
    const char *orcpt)
{
	struct envelope_rcpt *r;

	if (e->nrcpts == e->rcpts_cap) {
		e->rcpts_cap = e->rcpts_cap ? e->rcpts_cap * 2 : 4;
		e->rcpts = xrealloc(e->rcpts, e->rcpts_cap * sizeof(*e->rcpts));
	}
	r = &e->rcpts[e->nrcpts++];
	r->addr = xstrdup(addr);
	r->notify = notify;
	r->orcpt = xstrdup(orcpt ? orcpt : "");
}

void
envelope_encode(const struct envelope *e, struct ipc_out *m)
{
	size_t i;

	ipc_add_str(m, e->sender);
	ipc_add_str(m, e->client_addr);
	ipc_add_str(m, e->client_name);
	ipc_add_str(m, e->helo);
	ipc_add_str(m, e->protocol);
	ipc_add_str(m, e->auth_user);
	ipc_add_i64(m, e->received_at_us);
	ipc_add_i64(m, e->size_declared);
	ipc_add_u32(m, e->body_type);
	ipc_add_u32(m, e->smtputf8);
	ipc_add_u32(m, e->dsn_ret);
	ipc_add_str(m, e->dsn_envid);
	ipc_add_u32(m, (uint32_t)e->nrcpts);
	for (i = 0; i < e->nrcpts; i++) {
		ipc_add_str(m, e->rcpts[i].addr);
		ipc_add_u32(m, e->rcpts[i].notify);
		ipc_add_str(m, e->rcpts[i].orcpt);
	}
	ipc_add_u32(m, e->no_dkim);
}

int
envelope_decode(struct ipc_in *in, struct envelope *e)
{
	uint32_t n, i;

	envelope_init(e);
	if (ipc_get_str(in, &e->sender, ENVELOPE_MAX_FIELD) < 0 ||
	    ipc_get_str(in, &e->client_addr, ENVELOPE_MAX_FIELD) < 0 ||
	    ipc_get_str(in, &e->client_name, ENVELOPE_MAX_FIELD) < 0 ||
	    ipc_get_str(in, &e->helo, ENVELOPE_MAX_FIELD) < 0 ||
	    ipc_get_str(in, &e->protocol, ENVELOPE_MAX_FIELD) < 0 ||
	    ipc_get_str(in, &e->auth_user, ENVELOPE_MAX_FIELD) < 0 ||
	    ipc_get_i64(in, &e->received_at_us) < 0 ||
	    ipc_get_i64(in, &e->size_declared) < 0 ||
	    ipc_get_u32(in, &e->body_type) < 0 ||
	    ipc_get_u32(in, &e->smtputf8) < 0 ||
	    ipc_get_u32(in, &e->dsn_ret) < 0 ||
	    ipc_get_str(in, &e->dsn_envid, ENVELOPE_MAX_FIELD) < 0 ||
	    ipc_get_u32(in, &n) < 0)
		goto bad;
	if (n == 0 || n > ENVELOPE_MAX_RCPTS || e->body_type > 2 ||
	    e->smtputf8 > 1 || e->dsn_ret > 2)
		goto bad;
	for (i = 0; i < n; i++) {
		char *addr = NULL, *orcpt = NULL;
		uint32_t notify;

		if (ipc_get_str(in, &addr, ENVELOPE_MAX_FIELD) < 0)
			goto bad;
		if (ipc_get_u32(in, &notify) < 0 || notify > 0x0f ||
		    ipc_get_str(in, &orcpt, ENVELOPE_MAX_FIELD) < 0 ||
		    addr[0] == '\0') {
			free(addr);
			free(orcpt);
			goto bad;
		}
		envelope_add_rcpt(e, addr, notify, orcpt);
		free(addr);
		free(orcpt);
	}
	if (ipc_get_u32(in, &e->no_dkim) < 0 || e->no_dkim > 1 ||
	    ipc_end(in) < 0)
		goto bad;
	return 0;
bad:
	envelope_free(e);
	return -1;
}
