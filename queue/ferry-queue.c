/*
 * ferry-queue - the queue runner, started by ferryd (see queue.c).
 */
#include "autoconfig.h"

#include <malloc.h>

#include "child.h"
#include "queue.h"

/* The runner frees and takes again the same few hundred KiB for every
 * group of commits (SQLite's statements and pages, message chunks).  With
 * glibc's default 128 KiB trim threshold each free at the top of the heap
 * gave it back to the kernel (brk) and the next message faulted it in
 * again: 4 % of all ferry CPU in a 10-session relay profile.  Keeping up
 * to 1 MiB of free heap costs at most that much at rest. */
#define RUNNER_TRIM_THRESHOLD (1024 * 1024)
#define RUNNER_MMAP_THRESHOLD (512 * 1024)

int
main(int argc, char **argv)
{
	struct child_args a;

	(void)mallopt(M_TRIM_THRESHOLD, RUNNER_TRIM_THRESHOLD);
	(void)mallopt(M_MMAP_THRESHOLD, RUNNER_MMAP_THRESHOLD);
	child_parse_args(argc, argv, &a);
	return queue(&a);
}
