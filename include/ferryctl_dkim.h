/*
 * ferryctl_dkim.h - "ferryctl dkim keygen DOMAIN SELECTOR [--ed25519]
 * [--bits N] [--out FILE]": a new DKIM signing key, written 0600, and
 * the DNS TXT record that publishes it.  Needs no daemon.
 */
#ifndef FERRY_FERRYCTL_DKIM_H
#define FERRY_FERRYCTL_DKIM_H

/* argv[0] is "dkim"; returns ferryctl's exit status. */
int ferryctl_dkim(int argc, char **argv);

#endif
