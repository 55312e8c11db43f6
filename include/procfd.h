/*
 * procfd.h - the descriptor numbers the master hands its children, and
 * the status messages workers send back (Postfix master_proto.h style).
 *
 *   every child    FD_CONFIG   sealed memfd holding the configuration text
 *                              the master validated (so a child never reads
 *                              a file that changed after the check)
 *   ferry-smtpd    FD_STATUS   write end of the shared status pipe
 *                  FD_LISTEN.. one listening socket per configured listener
 *   ferry-queue    FD_INTAKE   listening unix socket the workers connect to
 */
#ifndef FERRY_PROCFD_H
#define FERRY_PROCFD_H

#include <stdint.h>
#include <sys/types.h>

#define FD_CONFIG 3
#define FD_STATUS 4
#define FD_INTAKE 4
#define FD_LISTEN 5

/* Exit code of a child that found its configuration or environment wrong;
 * the master does not respawn it quickly. */
#define EXIT_CONFIG 78

enum worker_status { WORKER_IDLE = 1, WORKER_BUSY = 2 };

/* Written whole to the status pipe (smaller than PIPE_BUF, so atomic). */
struct worker_status_msg {
	pid_t pid;
	uint32_t generation;
	uint32_t status;
};

/* Name of the intake socket inside the smtpd chroot directory. */
#define INTAKE_SOCKET_NAME "queue.sock"
/* Subdirectories of the spool. */
#define SPOOL_QUEUE_DIR "queue"   /* queue user only: the database */
#define SPOOL_SMTPD_DIR "smtpd"   /* root-owned chroot of the workers */
#define QUEUE_DB_NAME "queue.db"

#endif
