/*
 * ferry-queue - the queue runner, started by ferryd (see queue.c).
 */
#include "autoconfig.h"

#include "child.h"
#include "queue.h"

int
main(int argc, char **argv)
{
	struct child_args a;

	child_keep_heap();
	child_parse_args(argc, argv, &a);
	return queue(&a);
}
