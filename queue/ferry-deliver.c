/*
 * ferry-deliver - a delivery agent, started by ferryd (see deliver.c).
 */
#include "autoconfig.h"

#include "child.h"
#include "deliver.h"

int
main(int argc, char **argv)
{
	struct child_args a;

	child_keep_heap();
	child_parse_args(argc, argv, &a);
	return deliver(&a);
}
