/*
 * ferry-resolve - the SMTP clients' names for the workers, started by
 * ferryd when workers.client_names is on (see resolve.c).
 */
#include "autoconfig.h"

#include "child.h"
#include "resolve.h"

int
main(int argc, char **argv)
{
	struct child_args a;

	child_parse_args(argc, argv, &a);
	return resolve(&a);
}
