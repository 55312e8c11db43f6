/*
 * check_rest_heap.c - unit tests for src/rest_heap.c: the memory goes
 * back only after REST_HEAP_QUIET_MS without work, once per quiet spell,
 * and giving it back returns the free pages inside the heap to the system
 * (resident memory falls) even when child_keep_heap keeps freed heap.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "rest_heap.h"

START_TEST(test_due_after_quiet_once)
{
	struct rest_heap rh;
	int64_t t0 = 1000000;

	rest_heap_init(&rh, t0);
	ck_assert(!rest_heap_due(&rh, t0));
	ck_assert(!rest_heap_due(&rh, t0 + REST_HEAP_QUIET_MS - 1));
	ck_assert(rest_heap_due(&rh, t0 + REST_HEAP_QUIET_MS));
	rest_heap_give_back(&rh);
	/* once per quiet spell */
	ck_assert(!rest_heap_due(&rh, t0 + REST_HEAP_QUIET_MS + 1));
	ck_assert(!rest_heap_due(&rh, t0 + 100 * REST_HEAP_QUIET_MS));
	/* work starts a new spell, counted from the last work */
	rest_heap_busy(&rh, t0 + 200 * REST_HEAP_QUIET_MS);
	ck_assert(!rest_heap_due(&rh, t0 + 200 * REST_HEAP_QUIET_MS + 1));
	rest_heap_busy(&rh, t0 + 201 * REST_HEAP_QUIET_MS);
	ck_assert(!rest_heap_due(&rh, t0 + 202 * REST_HEAP_QUIET_MS - 1));
	ck_assert(rest_heap_due(&rh, t0 + 202 * REST_HEAP_QUIET_MS));
}
END_TEST

static long
resident_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &res), 2);
	fclose(f);
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

START_TEST(test_give_back_returns_free_heap)
{
	enum { N = 2048, BLOCK = 4000 };   /* 8 MiB in heap blocks */
	static char *blocks[N];
	struct rest_heap rh;
	long before, after;
	size_t i;

	child_keep_heap();
	for (i = 0; i < N; i++) {
		blocks[i] = malloc(BLOCK);
		ck_assert_ptr_nonnull(blocks[i]);
		memset(blocks[i], 0x5a, BLOCK);
	}
	/* all but the last: the heap's top stays in use, so free() alone
	 * gives nothing back */
	for (i = 0; i + 1 < N; i++)
		free(blocks[i]);
	before = resident_kib();
	rest_heap_init(&rh, 0);
	ck_assert(rest_heap_due(&rh, REST_HEAP_QUIET_MS));
	rest_heap_give_back(&rh);
	after = resident_kib();
	ck_assert_msg(before - after >= 4096,
	    "resident %ld KiB before, %ld KiB after", before, after);
	free(blocks[N - 1]);
}
END_TEST

static Suite *
rest_heap_suite(void)
{
	Suite *s = suite_create("rest_heap");
	TCase *tc = tcase_create("rest_heap");

	tcase_add_test(tc, test_due_after_quiet_once);
	tcase_add_test(tc, test_give_back_returns_free_heap);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(rest_heap_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
