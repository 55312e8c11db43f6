/*
 * procfd.h - the descriptor numbers the master hands its children, and
 * what travels on the status pipe and the notes (Postfix master_proto.h
 * style).
 *
 *   every child    FD_CONFIG   sealed memfd holding the configuration text
 *                              the master validated (so a child never reads
 *                              a file that changed after the check)
 *   ferry-smtpd    FD_STATUS   write end of the shared status pipe
 *                              (IMSG_WORKER_STATUS frames)
 *                  FD_WORKER_NOTES  its own end of a SOCK_SEQPACKET pair:
 *                              the master's notes to this worker
 *                              (IMSG_NOTE_DRAINING)
 *                  FD_LISTEN.. one listening socket per configured listener
 *   ferry-queue    FD_INTAKE   listening unix socket the workers connect to
 *                  FD_CONTROL  listening unix socket of ferryctl
 *                  FD_AGENTS   listening unix socket the delivery agents
 *                              connect to
 *                  FD_POOL     the master's notes: worker counts (for
 *                              ferryctl status), reloads and the drain
 *                              state; the runner answers on it with the
 *                              delivery agents it has work for
 *                              (IMSG_NOTE_AGENTS) and passes on ferryctl
 *                              drain / undrain (IMSG_NOTE_DRAIN)
 *   ferry-deliver  (only FD_CONFIG; it connects to <spool>/agent.sock)
 *                  FD_METRICS  (metrics { enabled } only) listening unix
 *                              socket ferry-metrics connects to; each
 *                              connection gets one snapshot of the
 *                              counters and is closed
 *   ferry-metrics  FD_METRICS_HTTP  the TCP listener of the endpoint
 *   ferry-anvil    FD_ANVIL    listening unix socket the workers connect to
 *                  FD_ANVIL_NOTES  the master's notes: new limits after a
 *                              reload (IMSG_NOTE_ANVIL_LIMITS)
 *   ferry-resolve  FD_RESOLVE  listening unix socket the workers connect to
 *                              (only while workers.client_names is on)
 */
#ifndef FERRY_PROCFD_H
#define FERRY_PROCFD_H

#include <stdint.h>
#include <sys/types.h>

#define FD_CONFIG 3
#define FD_STATUS 4
#define FD_INTAKE 4
#define FD_WORKER_NOTES 5
#define FD_LISTEN 6
#define FD_CONTROL 5
#define FD_AGENTS 6
#define FD_POOL 7     /* runner: read end of the master's pool reports */
#define FD_ANVIL 4
#define FD_ANVIL_NOTES 5
#define FD_METRICS 8  /* runner: the metrics snapshot socket */
#define FD_METRICS_HTTP 4
#define FD_RESOLVE 4
#define FD_TOKEN 4        /* ferry-token: its listening socket */
#define FD_TOKEN_NOTES 5  /* ferry-token: rotated tokens to the master */

/* Exit code of a child that found its configuration or environment wrong;
 * the master does not respawn it quickly. */
#define EXIT_CONFIG 78

/* A worker's state in its IMSG_WORKER_STATUS on the status pipe: no
 * session, some, or workers.sessions_per_worker of them (no room). */
enum worker_status { WORKER_IDLE = 1, WORKER_BUSY = 2, WORKER_FULL = 3 };

/* The master's notes (ipc.h frames on SOCK_SEQPACKET pairs, channel.h):
 * to the runner over FD_POOL, IMSG_NOTE_POOL (worker counts for ferryctl
 * status) and IMSG_NOTE_RELOAD (the new configuration's sealed memfd
 * rides along, so the runner routes queued mail by the new file); to
 * anvil over FD_ANVIL_NOTES, IMSG_NOTE_ANVIL_LIMITS (anvil runs chrooted
 * and cannot re-read the file, so the master sends the numbers; the
 * counts survive a reload); to each SMTP worker over FD_WORKER_NOTES,
 * IMSG_NOTE_DRAINING (ferryctl drain: new connections get 421 4.3.2;
 * sent when the worker starts and whenever the state changes).  A
 * malformed note is the master lying: the receiver exits. */

/* Name of the intake socket inside the smtpd chroot directory. */
#define INTAKE_SOCKET_NAME "queue.sock"
/* Name of ferry-anvil's socket inside the smtpd chroot directory
 * (root:<smtpd group> 0660, like the intake socket). */
#define ANVIL_SOCKET_NAME "anvil.sock"
/* Name of ferry-resolve's socket inside the smtpd chroot directory
 * (root:<smtpd group> 0660, like anvil's). */
#define RESOLVE_SOCKET_NAME "resolve.sock"
/* spool/token.sock: ferry-token, for the queue user's group; present
 * only while some route uses OAuth2 */
#define TOKEN_SOCKET_NAME "token.sock"
/* Name of the runner's metrics socket inside the smtpd chroot directory
 * (root:<smtpd group> 0660), for ferry-metrics. */
#define METRICS_SOCKET_NAME "metrics.sock"
/* Name of the master's metrics socket beside it (the workers' counters). */
#define MASTER_METRICS_SOCKET_NAME "metrics-master.sock"
/* Name of the runner's socket for delivery agents, in the spool. */
#define AGENT_SOCKET_NAME "agent.sock"
/* Subdirectories of the spool. */
#define SPOOL_QUEUE_DIR "queue"   /* queue user only: the database */
#define SPOOL_SMTPD_DIR "smtpd"   /* root-owned chroot of the workers */
#define QUEUE_DB_NAME "queue.db"
/* In the spool: the agents' socket (root:<deliver group> 0660) and
 * ferryctl's (root:<admin group> 0660, or root only). */
#define AGENT_SOCKET_NAME "agent.sock"
#define CONTROL_SOCKET_NAME "ferryctl.sock"

#endif
