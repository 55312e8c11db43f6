/*
 * ferry-smtpd - an SMTP worker, started by ferryd (see smtpd.c).
 */
#include "autoconfig.h"

#include "child.h"
#include "smtpd.h"

int
main(int argc, char **argv)
{
	struct child_args a;

	child_keep_heap();
	child_parse_args(argc, argv, &a);
	return smtpd(&a);
}
