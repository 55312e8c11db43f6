/*
 * ferry-queue - the queue runner, started by ferryd (see queue.c).
 */
#include "autoconfig.h"

#include "child.h"
#include "config.h"
#include "queue.h"

int
main(int argc, char **argv)
{
	struct child_args a;

	child_keep_heap();
	config_check_dkim_keys();   /* it signs with them */
	child_parse_args(argc, argv, &a);
	return queue(&a);
}
