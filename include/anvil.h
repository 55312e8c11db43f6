/*
 * anvil.h - ferry-anvil, the process that keeps the abuse counts of all
 * SMTP workers: connections in all and per client, connection and
 * message rates per client, authentication failures and lockouts (the
 * counting itself is anvil_table.h; the workers' side anvil_client.h).
 */
#ifndef FERRY_ANVIL_H
#define FERRY_ANVIL_H

struct child_args;

int anvil(const struct child_args *a);

#endif
