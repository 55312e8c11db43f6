/*
 * control_proto.c - encoding and strict decoding of ferryctl's request
 * (control_proto.h).
 *
 * Security stance: the request comes from an administrator's process,
 * but it is decoded as if from an enemy: every word is length-limited
 * and NUL-free, the count is only believed as far as the payload bears
 * it out, bytes left over are refused, and a decoder that fails frees
 * what it kept.  What the words mean is control.c's business.
 */
#include "autoconfig.h"

#include <stdlib.h>

#include "control_proto.h"

void
control_request_encode(struct ipc_out *m, int argc, char *const *argv)
{
	int i;

	ipc_add_u32(m, (uint32_t)argc);
	for (i = 0; i < argc; i++)
		ipc_add_str(m, argv[i]);
}

int
control_request_decode(struct ipc_in *in, char **words, size_t max,
    size_t *nw)
{
	uint32_t count, i;

	*nw = 0;
	if (ipc_get_u32(in, &count) < 0)
		return -1;
	for (i = 0; i < count; i++) {
		char *w;

		if (ipc_get_str(in, &w, CONTROL_REQUEST_MAX) < 0)
			goto malformed;
		if (w[0] == '\0') {
			free(w);       /* as white space between words was */
			continue;
		}
		if (*nw < max)
			words[*nw] = w;
		else
			free(w);
		(*nw)++;
	}
	if (ipc_end(in) == 0)
		return 0;
malformed:
	for (i = 0; i < *nw && i < max; i++)
		free(words[i]);
	*nw = 0;
	return -1;
}
