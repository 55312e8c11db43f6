/*
 * ferry-token - OAuth2 access tokens for the routes whose credentials
 * use oauth2, started by ferryd only when some do (see token.c).
 */
#include "autoconfig.h"

#include "child.h"
#include "token.h"

int
main(int argc, char **argv)
{
	struct child_args a;

	child_parse_args(argc, argv, &a);
	return token(&a);
}
