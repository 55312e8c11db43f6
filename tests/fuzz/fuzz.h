/*
 * fuzz.h - shared by the libFuzzer harnesses in tests/fuzz.
 *
 * A harness checks invariants with FUZZ_CHECK: a broken one prints where
 * and aborts, so libFuzzer records the input as a crash.  Harnesses keep
 * no state between inputs and free everything they allocate.
 */
#ifndef FERRY_FUZZ_H
#define FERRY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do {                                          \
	if (!(cond)) {                                                 \
		fprintf(stderr, "%s:%d: invariant broken: %s\n",       \
		    __FILE__, __LINE__, #cond);                        \
		abort();                                               \
	}                                                              \
} while (0)

/* Nonzero when s[0..size) holds a NUL: a fixed-size output field that the
 * parser promised to terminate. */
#define FUZZ_TERMINATED(s) (memchr((s), '\0', sizeof(s)) != NULL)

/* An exact-size heap copy, so ASan sees any read past the end. */
static inline void *
fuzz_dup(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);

	if (q == NULL)
		abort();
	if (n)
		memcpy(q, p, n);
	return q;
}

/* n bytes of zeroed heap, exactly n, for outputs. */
static inline void *
fuzz_alloc(size_t n)
{
	void *q = calloc(n ? n : 1, 1);

	if (q == NULL)
		abort();
	return q;
}

#endif
