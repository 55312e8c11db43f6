/*
 * ferry-anvil - the SMTP workers' shared counts, started by ferryd (see
 * anvil.c).
 */
#include "autoconfig.h"

#include "anvil.h"
#include "child.h"

int
main(int argc, char **argv)
{
	struct child_args a;

	child_parse_args(argc, argv, &a);
	return anvil(&a);
}
