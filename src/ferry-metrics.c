/*
 * ferry-metrics - the monitoring endpoint, started by ferryd when
 * metrics { enabled } (see metrics.c).
 */
#include "autoconfig.h"

#include "child.h"
#include "metrics.h"

int
main(int argc, char **argv)
{
	struct child_args a;

	child_parse_args(argc, argv, &a);
	return metrics(&a);
}
