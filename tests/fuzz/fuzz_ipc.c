/*
 * fuzz_ipc.c - libFuzzer harness for the IPC frame reader (ipc.c) and the
 * message decoders behind it (envelope.c, deliver_proto.c,
 * control_proto.c).
 *
 * The input is what a peer process writes on the socket.  ipc_frame must
 * judge the header exactly as ipc.h says, report a whole frame only when
 * every byte of it is there (never for a shorter prefix), and point the
 * payload inside it.  The payload of a whole frame, in an exact-size
 * copy so ASan sees any read past its end, then goes through every
 * decoder: envelope_decode, deliver_job_decode, deliver_result_decode,
 * deliver_done_decode, control_request_decode, the OAuth2 token frames
 * (token_proto.c: token_state_decode, token_refresh_decode,
 * token_rotated_decode, whose tokens must pass credentials_token_valid)
 * and the small per-type
 * readers the daemons inline
 * (intake.c, intake_client.c, scheduler.c, deliver.c, and the status and
 * note readers in master.c, queue.c, anvil.c); ipc_header must judge the
 * header as ipc_frame does.  What decodes
 * must re-encode to the very same frame - every field is length-prefixed
 * and ipc_end refuses leftovers, so the encoding is canonical - and must
 * decode again to an equal structure; a decoded job's hop key must fit
 * buffers of any size.  Everything decoded is freed; a
 * decoder that fails must leave nothing behind (LeakSanitizer checks).
 */
#include "fuzz.h"

#include <arpa/inet.h>
#include <string.h>

#include "anvil_figures.h"
#include "control_proto.h"
#include "credentials.h"
#include "deliver_proto.h"
#include "token_proto.h"
#include "envelope.h"
#include "ipc.h"

/* The frame as an encoder rebuilt it must be the frame we read. */
static void
same_frame(struct ipc_out *m, const uint8_t *frame, size_t flen)
{
	size_t len;
	const uint8_t *p = ipc_out_finish(m, &len);

	FUZZ_CHECK(len == flen && memcmp(p, frame, len) == 0);
	ipc_out_free(m);
}

static int
streq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static int
envelope_eq(const struct envelope *a, const struct envelope *b)
{
	size_t i;

	if (!streq(a->sender, b->sender) ||
	    !streq(a->client_addr, b->client_addr) ||
	    !streq(a->client_name, b->client_name) ||
	    !streq(a->helo, b->helo) || !streq(a->protocol, b->protocol) ||
	    !streq(a->auth_user, b->auth_user) ||
	    a->received_at_us != b->received_at_us ||
	    a->size_declared != b->size_declared ||
	    a->body_type != b->body_type || a->smtputf8 != b->smtputf8 ||
	    a->dsn_ret != b->dsn_ret || !streq(a->dsn_envid, b->dsn_envid) ||
	    a->nrcpts != b->nrcpts)
		return 0;
	for (i = 0; i < a->nrcpts; i++)
		if (!streq(a->rcpts[i].addr, b->rcpts[i].addr) ||
		    a->rcpts[i].notify != b->rcpts[i].notify ||
		    !streq(a->rcpts[i].orcpt, b->rcpts[i].orcpt))
			return 0;
	return 1;
}

static int
job_eq(const struct deliver_job *a, const struct deliver_job *b)
{
	size_t i;

	if (a->job_id != b->job_id || !streq(a->qid, b->qid) ||
	    !streq(a->sender, b->sender) || a->size != b->size ||
	    a->body_type != b->body_type || a->smtputf8 != b->smtputf8 ||
	    a->dsn_ret != b->dsn_ret || !streq(a->envid, b->envid) ||
	    !streq(a->helo, b->helo) || !streq(a->route, b->route) ||
	    !streq(a->domain, b->domain) || a->nhosts != b->nhosts ||
	    a->mx_port != b->mx_port || a->tls != b->tls ||
	    !streq(a->ca_file, b->ca_file) ||
	    a->tls_min_version != b->tls_min_version ||
	    a->auth != b->auth || a->auth_plaintext != b->auth_plaintext ||
	    a->nrcpts != b->nrcpts || !streq(a->oauth_token, b->oauth_token))
		return 0;
	for (i = 0; i < a->nhosts; i++)
		if (!streq(a->hosts[i], b->hosts[i]))
			return 0;
	for (i = 0; i < a->nrcpts; i++)
		if (a->rcpts[i].id != b->rcpts[i].id ||
		    !streq(a->rcpts[i].addr, b->rcpts[i].addr) ||
		    a->rcpts[i].notify != b->rcpts[i].notify ||
		    !streq(a->rcpts[i].orcpt, b->rcpts[i].orcpt))
			return 0;
	return 1;
}

/* Re-reads a frame we built ourselves; it must be whole and valid. */
static void
reread(const uint8_t *frame, size_t flen, struct ipc_in *in)
{
	FUZZ_CHECK(ipc_frame(frame, flen, in) == (long)flen);
}

static void
try_envelope(const struct ipc_in *payload, const uint8_t *frame,
    size_t flen)
{
	struct ipc_in in = *payload;
	struct envelope e, again;
	struct ipc_out m = { 0 };
	const uint8_t *p;
	size_t len, i;

	if (envelope_decode(&in, &e) < 0) {
		FUZZ_CHECK(e.sender == NULL && e.rcpts == NULL &&
		    e.nrcpts == 0);
		return;
	}
	FUZZ_CHECK(e.nrcpts >= 1 && e.nrcpts <= ENVELOPE_MAX_RCPTS);
	FUZZ_CHECK(e.body_type <= 2 && e.smtputf8 <= 1 && e.dsn_ret <= 2);
	FUZZ_CHECK(strlen(e.sender) <= ENVELOPE_MAX_FIELD);
	for (i = 0; i < e.nrcpts; i++)
		FUZZ_CHECK(e.rcpts[i].addr[0] != '\0' &&
		    e.rcpts[i].notify <= 0x0f && e.rcpts[i].orcpt != NULL);
	ipc_out_init(&m, payload->type);
	envelope_encode(&e, &m);
	p = ipc_out_finish(&m, &len);
	FUZZ_CHECK(len == flen && memcmp(p, frame, len) == 0);
	reread(p, len, &in);
	FUZZ_CHECK(envelope_decode(&in, &again) == 0);
	FUZZ_CHECK(envelope_eq(&e, &again));
	envelope_free(&again);
	envelope_free(&e);
	ipc_out_free(&m);
}

static void
try_job(const struct ipc_in *payload, const uint8_t *frame, size_t flen)
{
	struct ipc_in in = *payload;
	struct deliver_job j, again;
	struct ipc_out m = { 0 };
	const uint8_t *p;
	size_t len, i;
	static const size_t keylens[] = { 1, 2, 16, 256, 4096 };

	if (deliver_job_decode(&in, &j) < 0) {
		FUZZ_CHECK(j.qid == NULL && j.hosts == NULL &&
		    j.rcpts == NULL && j.nrcpts == 0);
		return;
	}
	FUZZ_CHECK(j.nrcpts >= 1 && j.nrcpts <= JOB_MAX_RCPTS);
	FUZZ_CHECK(j.nhosts <= JOB_MAX_HOSTS);
	FUZZ_CHECK(j.size >= 0 && j.mx_port >= 1 && j.mx_port <= 65535);
	for (i = 0; i < j.nhosts; i++)
		FUZZ_CHECK(j.hosts[i][0] != '\0');
	for (i = 0; i < j.nrcpts; i++)
		FUZZ_CHECK(j.rcpts[i].addr[0] != '\0' &&
		    (j.rcpts[i].notify & ~0x0fu) == 0);
	for (i = 0; i < sizeof(keylens) / sizeof(keylens[0]); i++) {
		char *key = fuzz_alloc(keylens[i]);

		deliver_hop_key(&j, key, keylens[i]);
		FUZZ_CHECK(memchr(key, '\0', keylens[i]) != NULL);
		free(key);
	}
	ipc_out_init(&m, payload->type);
	deliver_job_encode(&j, &m);
	p = ipc_out_finish(&m, &len);
	FUZZ_CHECK(len == flen && memcmp(p, frame, len) == 0);
	reread(p, len, &in);
	FUZZ_CHECK(deliver_job_decode(&in, &again) == 0);
	FUZZ_CHECK(job_eq(&j, &again));
	deliver_job_free(&again);
	deliver_job_free(&j);
	ipc_out_free(&m);
}

static void
try_result(const struct ipc_in *payload, const uint8_t *frame, size_t flen)
{
	struct ipc_in in = *payload;
	struct deliver_result r;
	struct ipc_out m = { 0 };

	if (deliver_result_decode(&in, &r) < 0) {
		FUZZ_CHECK(r.dsn == NULL && r.reply == NULL &&
		    r.relay == NULL && r.tls == NULL);
		return;
	}
	FUZZ_CHECK(r.status == DS_DELIVERED || r.status == DS_DEFERRED ||
	    r.status == DS_FAILED);
	FUZZ_CHECK(r.dsn[0] == (char)('0' + r.status) && r.relay[0] != '\0');
	ipc_out_init(&m, payload->type);
	deliver_result_encode(&r, &m);
	same_frame(&m, frame, flen);
	deliver_result_free(&r);
}

static void
try_done(const struct ipc_in *payload, const uint8_t *frame, size_t flen)
{
	struct ipc_in in = *payload;
	struct deliver_done d;
	struct ipc_out m = { 0 };

	if (deliver_done_decode(&in, &d) < 0) {
		FUZZ_CHECK(d.hop == NULL);
		return;
	}
	ipc_out_init(&m, payload->type);
	deliver_done_encode(&d, &m);
	same_frame(&m, frame, flen);
	deliver_done_free(&d);
}

static void
try_probe(const struct ipc_in *payload, const uint8_t *frame, size_t flen)
{
	struct ipc_in in = *payload;
	struct deliver_probe p;
	struct ipc_out m = { 0 };

	if (deliver_probe_decode(&in, &p) < 0) {
		FUZZ_CHECK(p.host == NULL);
		return;
	}
	FUZZ_CHECK(p.host[0] != '\0');
	ipc_out_init(&m, payload->type);
	deliver_probe_encode(&p, &m);
	same_frame(&m, frame, flen);
	deliver_probe_free(&p);
}

/* ferryctl's request: the words kept are non-empty, NUL-free and within
 * the cap; with no empty word and none past max, they re-encode to the
 * very frame. */
static void
try_ctl_request(const struct ipc_in *payload, const uint8_t *frame,
    size_t flen)
{
	struct ipc_in in = *payload;
	struct ipc_out m = { 0 };
	char *words[8];
	uint32_t count;
	size_t nw, k;

	if (control_request_decode(&in, words, 8, &nw) < 0) {
		FUZZ_CHECK(nw == 0);
		return;
	}
	for (k = 0; k < nw && k < 8; k++)
		FUZZ_CHECK(words[k][0] != '\0' &&
		    strlen(words[k]) <= CONTROL_REQUEST_MAX);
	in = *payload;
	if (ipc_get_u32(&in, &count) == 0 && count == nw && nw <= 8) {
		ipc_out_init(&m, payload->type);
		control_request_encode(&m, (int)nw, words);
		same_frame(&m, frame, flen);
	}
	for (k = 0; k < nw && k < 8; k++)
		free(words[k]);
}

/* ferry-token's frames: what decodes re-encodes to the same frame, and
 * a token that decodes is one that fits a credentials line. */
static void
try_token(const struct ipc_in *payload, const uint8_t *frame, size_t flen)
{
	struct ipc_in in = *payload;
	struct ipc_out m = { 0 };
	struct token_state t;
	char *route, *tok;

	if (token_state_decode(&in, &t) == 0) {
		FUZZ_CHECK(t.route[0] != '\0' && t.status <= TOKEN_FAILED &&
		    (t.access_token[0] == '\0' ||
		    credentials_token_valid(t.access_token)));
		ipc_out_init(&m, payload->type);
		token_state_encode(&t, &m);
		same_frame(&m, frame, flen);
		token_state_free(&t);
	} else
		FUZZ_CHECK(t.route == NULL && t.access_token == NULL);
	in = *payload;
	if (token_refresh_decode(&in, &route) == 0) {
		FUZZ_CHECK(route[0] != '\0');
		free(route);
	} else
		FUZZ_CHECK(route == NULL);
	in = *payload;
	if (token_rotated_decode(&in, &route, &tok) == 0) {
		FUZZ_CHECK(credentials_token_valid(tok));
		free(route);
		free(tok);
	} else
		FUZZ_CHECK(route == NULL && tok == NULL);
}

/* The shapes the daemons read inline, by type. */
static void
try_small(const struct ipc_in *payload, const uint8_t *frame, size_t flen)
{
	struct ipc_in in = *payload;
	struct ipc_out m = { 0 };
	uint32_t u32;
	uint64_t u64;
	uint8_t u8;
	const uint8_t *p;
	size_t len, count = 0;
	char *s = NULL;

	ipc_out_init(&m, payload->type);
	switch (payload->type) {
	case IMSG_CTL_ANSWER:
		/* ferryctl: a piece of the answer */
		if (ipc_get_data(&in, &p, &len) < 0 || ipc_end(&in) < 0)
			break;
		FUZZ_CHECK(p >= payload->p &&
		    p + len <= payload->p + payload->left);
		ipc_add_data(&m, p, len);
		same_frame(&m, frame, flen);
		break;
	case IMSG_TX_DATA:
	case IMSG_JOB_DATA:
		if (ipc_get_u32(&in, &u32) < 0 ||
		    ipc_get_data(&in, &p, &len) < 0 || ipc_end(&in) < 0)
			break;
		FUZZ_CHECK(p >= payload->p &&
		    p + len <= payload->p + payload->left);
		ipc_add_u32(&m, u32);
		ipc_add_data(&m, p, len);
		same_frame(&m, frame, flen);
		break;
	case IMSG_TX_COMMIT:
		if (ipc_get_u64(&in, &u64) < 0 || ipc_end(&in) < 0)
			break;
		ipc_add_u64(&m, u64);
		same_frame(&m, frame, flen);
		break;
	case IMSG_TX_BEGUN:
	case IMSG_TX_COMMITTED:
	case IMSG_TX_FAIL:
		if (ipc_get_str(&in, &s, payload->type == IMSG_TX_FAIL ?
		    200 : 64) < 0 || ipc_end(&in) < 0)
			break;
		ipc_add_str(&m, s);
		same_frame(&m, frame, flen);
		break;
	case IMSG_AGENT_HELLO:
		if (ipc_get_u32(&in, &u32) < 0 || ipc_end(&in) < 0)
			break;
		ipc_add_u32(&m, u32);
		same_frame(&m, frame, flen);
		break;
	case IMSG_WORKER_STATUS:
	case IMSG_NOTE_POOL:
	case IMSG_NOTE_ANVIL_LIMITS: {
		/* fixed counts of u32/i32 (master.c, queue.c, anvil.c) */
		size_t want = payload->type == IMSG_WORKER_STATUS ? 3 :
		    payload->type == IMSG_NOTE_POOL ? 2 : 9, k;
		int32_t v[9];

		for (k = 0; k < want; k++)
			if (ipc_get_i32(&in, &v[k]) < 0)
				break;
		if (k < want || ipc_end(&in) < 0)
			break;
		for (k = 0; k < want; k++)
			ipc_add_i32(&m, v[k]);
		same_frame(&m, frame, flen);
		break;
	}
	case IMSG_NOTE_ANVIL: {
		/* anvil's figures (anvil_figures.c): strict, and what
		 * decodes encodes back to the same frame */
		struct anvil_figures fig;

		if (anvil_figures_take(&in, &fig) < 0)
			break;
		FUZZ_CHECK(fig.running <= 1 && fig.stress <= 1);
		anvil_figures_add(&m, &fig);
		same_frame(&m, frame, flen);
		break;
	}
	case IMSG_NOTE_ANVIL_COUNTS: {
		uint32_t conns, clients;

		if (anvil_counts_take(&in, &conns, &clients) < 0)
			break;
		anvil_counts_add(&m, conns, clients);
		same_frame(&m, frame, flen);
		break;
	}
	case IMSG_ANVIL_STRESS:
		/* on/off, then the stress timeout (anvil.c) */
		if (ipc_get_u8(&in, &u8) < 0 || ipc_get_u32(&in, &u32) < 0 ||
		    ipc_end(&in) < 0)
			break;
		ipc_add_u8(&m, u8);
		ipc_add_u32(&m, u32);
		same_frame(&m, frame, flen);
		break;
	default:
		if (ipc_end(&in) < 0)
			break;
		same_frame(&m, frame, flen);
		break;
	}
	free(s);
	ipc_out_free(&m);

	/* byte by byte: exactly left bytes, then nothing */
	in = *payload;
	while (ipc_get_u8(&in, &u8) == 0)
		count++;
	FUZZ_CHECK(count == payload->left && ipc_end(&in) == 0);
	in = *payload;
	{
		int64_t i64;

		while (ipc_get_i64(&in, &i64) == 0)
			;
		FUZZ_CHECK(in.left < 8);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_in in, payload;
	uint32_t plen;
	uint16_t type, version;
	uint8_t *frame;
	long r;
	size_t i, flen;
	int bad;

	r = ipc_frame(data, size, &in);
	{
		/* the header alone is judged the same way */
		size_t hlen;
		int htype, h = ipc_header(data, size, &htype, &hlen);

		FUZZ_CHECK(h == (size < IPC_HEADER_SIZE ? 0 : r < 0 ? -1 : 1));
		if (r > 0)
			FUZZ_CHECK(htype == in.type && hlen == in.left);
	}
	if (size < IPC_HEADER_SIZE) {
		FUZZ_CHECK(r == 0);
		return 0;
	}
	memcpy(&plen, data, 4);
	memcpy(&type, data + 4, 2);
	memcpy(&version, data + 6, 2);
	plen = ntohl(plen);
	type = ntohs(type);
	version = ntohs(version);
	bad = version != IPC_VERSION || plen > IPC_MAX_PAYLOAD ||
	    type == 0 || type >= IMSG_TYPE_MAX;
	if (bad) {
		FUZZ_CHECK(r == -1);
		return 0;
	}
	if (size < IPC_HEADER_SIZE + (size_t)plen) {
		FUZZ_CHECK(r == 0);
		return 0;
	}
	FUZZ_CHECK(r == (long)(IPC_HEADER_SIZE + plen));
	FUZZ_CHECK(in.type == type && in.p == data + IPC_HEADER_SIZE &&
	    in.left == plen);
	FUZZ_CHECK(strcmp(ipc_type_name(in.type), "unknown") != 0);

	flen = (size_t)r;
	frame = fuzz_dup(data, flen);
	for (i = 0; i < flen; i++) {
		struct ipc_in dummy;

		FUZZ_CHECK(ipc_frame(frame, i, &dummy) == 0);
	}
	FUZZ_CHECK(ipc_frame(frame, flen, &payload) == r);

	try_envelope(&payload, frame, flen);
	try_job(&payload, frame, flen);
	try_result(&payload, frame, flen);
	try_done(&payload, frame, flen);
	try_probe(&payload, frame, flen);
	try_ctl_request(&payload, frame, flen);
	try_token(&payload, frame, flen);
	try_small(&payload, frame, flen);
	free(frame);
	return 0;
}
