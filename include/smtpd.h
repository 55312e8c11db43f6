/*
 * smtpd.h - the SMTP worker process (ferry-smtpd): loads what it needs,
 * drops privileges, then serves many sessions at once from one event loop.
 */
#ifndef FERRY_SMTPD_H
#define FERRY_SMTPD_H

struct child_args;

int smtpd(const struct child_args *a);

#endif
