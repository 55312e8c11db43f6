-- schema.sql - the queue store's schema, version 3 (PRAGMA user_version).
--
-- This file is the one place the schema lives: it is compiled into ferry
-- as the C string store_schema_sql and run by store_open() inside one
-- transaction on an empty database, which then sets user_version.
-- A later version adds a migration step in store_sqlite.c; never edit
-- a released version's tables in place.  Version 2 added
-- message.agent_deaths and message.hold_reason (migrate_v1_v2); version 3
-- added the history_* tables (migrate_v2_v3, which runs the same DDL).
--
-- Times are unix seconds as REAL (microsecond resolution).

-- One row per queued message: its envelope and where it is in its life.
CREATE TABLE message (
    id            INTEGER PRIMARY KEY,  -- row id; recipients and body refer to it
    qid           TEXT NOT NULL UNIQUE, -- queue id, 12 upper-case hex chars, in every log line
    state         TEXT NOT NULL         -- 'incoming': body still arriving, removed at start;
                  CHECK (state IN ('incoming', 'active', 'hold')),
                                        -- 'active': complete, being delivered;
                                        -- 'hold': complete, kept back by the operator
                                        -- or by ferry (see hold_reason)
    sender        TEXT NOT NULL,        -- MAIL FROM address, '' for the null sender
    size          INTEGER,              -- body size in bytes, set when the message is complete
    received_at   REAL NOT NULL,        -- when the transaction started (wall clock)
    client_addr   TEXT NOT NULL,        -- client's numeric address
    client_name   TEXT NOT NULL,        -- client's verified name, 'unknown' when none
    helo          TEXT NOT NULL,        -- HELO/EHLO argument
    protocol      TEXT NOT NULL,        -- SMTP, ESMTP, UTF8SMTP or UTF8ESMTP
    auth_user     TEXT,                 -- SMTP AUTH identity, NULL when not authenticated
    body_type     TEXT                  -- MAIL BODY=, NULL when not given
                  CHECK (body_type IN ('7BIT', '8BITMIME')),
    smtputf8      INTEGER NOT NULL      -- 1 when MAIL carried SMTPUTF8
                  CHECK (smtputf8 IN (0, 1)),
    dsn_ret       TEXT                  -- MAIL RET= (RFC 3461), NULL when not given
                  CHECK (dsn_ret IN ('FULL', 'HDRS')),
    dsn_envid     TEXT,                 -- MAIL ENVID= as received (xtext, passed on as is), NULL when not given
    size_declared INTEGER,              -- MAIL SIZE=, NULL when not given
    dsn_of        TEXT,                 -- for a delivery status notification ferry
                                        -- generated: the qid it reports on; else NULL
    warned        INTEGER NOT NULL DEFAULT 0, -- 1 once a delay warning was queued
    agent_deaths  INTEGER NOT NULL DEFAULT 0, -- delivery agents that died in a row
                                        -- while delivering it (reset by a finished job)
    hold_reason   TEXT                  -- why ferry put it on hold; NULL when the
                                        -- operator did, or when not on hold
);

-- ferryctl status: messages counted by state, and the oldest, from this
-- index alone (a database made before it is given it at open).
CREATE INDEX message_state ON message(state, received_at);

-- One row per recipient of a message, with its own delivery state.
CREATE TABLE recipient (
    id            INTEGER PRIMARY KEY,  -- row id
    message_id    INTEGER NOT NULL      -- the message this recipient belongs to
                  REFERENCES message(id) ON DELETE CASCADE,
    address       TEXT NOT NULL,        -- RCPT TO address
    dsn_notify    INTEGER NOT NULL,     -- RCPT NOTIFY= as NOTIFY_* bits, 0 when not given
    dsn_orcpt     TEXT,                 -- RCPT ORCPT= as received ('addr-type;xtext'), NULL when not given
    state         TEXT NOT NULL         -- 'pending': still to do; 'delivered', 'failed': final
                  CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0, -- delivery attempts made so far
    next_attempt  REAL,                 -- when the next attempt is due; NULL while incoming
    last_attempt  REAL,                 -- when the last attempt was made, NULL before the first
    last_reply    TEXT,                 -- the last reply or error, for bounces and ferryctl
    last_dsn      TEXT                  -- enhanced status code of the last attempt ('5.1.1')
);

-- The scheduler's "what is due now": pending recipients by due time.
CREATE INDEX recipient_due ON recipient(next_attempt) WHERE state = 'pending';
-- A message's recipients (reading the envelope, cascading deletes).
CREATE INDEX recipient_message ON recipient(message_id);

-- A message's body in chunks, so it is streamed in and out without being
-- held whole in memory.  Concatenated in seq order they are the message.
CREATE TABLE body (
    message_id    INTEGER NOT NULL      -- the message this chunk belongs to
                  REFERENCES message(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,     -- chunk number, ascending in message order
    chunk         BLOB NOT NULL,        -- the bytes
    PRIMARY KEY (message_id, seq)
);  -- a rowid table: chunks are large (SQLite advises WITHOUT ROWID only for small rows)

-- Every delivery attempt of every recipient: ferryctl's history and the
-- evidence behind a bounce.  Kept until the message leaves the queue (then
-- copied to history_attempt when history is kept).
CREATE TABLE attempt (
    id            INTEGER PRIMARY KEY,
    recipient_id  INTEGER NOT NULL      -- the recipient tried
                  REFERENCES recipient(id) ON DELETE CASCADE,
    at            REAL NOT NULL,        -- when the result came (wall clock)
    relay         TEXT NOT NULL,        -- 'host[address]:port', or 'none' when no
                                        -- connection was made
    tls           TEXT,                 -- 'TLSv1.3 TLS_AES_256_GCM_SHA384', NULL when plain
    status        TEXT NOT NULL         -- what the attempt decided
                  CHECK (status IN ('sent', 'deferred', 'bounced', 'expired')),
    dsn           TEXT NOT NULL,        -- enhanced status code
    reply         TEXT NOT NULL         -- the remote reply or the local reason
);
CREATE INDEX attempt_recipient ON attempt(recipient_id);

-- Rate shaping: the hour and day counts of a route (route_shaper.h), so a
-- restart does not hand a provider's quota out again.  Any schema version
-- may hold it: the store makes it when a database made before lacks it.
CREATE TABLE route_quota (
    route         TEXT NOT NULL,        -- the route's name
    span          INTEGER NOT NULL,     -- 2: the hour, 3: the day
    tokens        REAL NOT NULL,        -- messages it may still send
    stamp         REAL NOT NULL,        -- when tokens was counted
    PRIMARY KEY (route, span)
);

-- Delivery history: what is left of a message once it leaves the queue
-- with every recipient final (its summary, each recipient's outcome and
-- every attempt; never the body).  Written in the transaction that
-- removes the message and pruned after history { retention }.
-- HISTORY DDL BEGIN (migrate_v2_v3 runs this part as is)
CREATE TABLE history_message (
    id            INTEGER PRIMARY KEY,
    qid           TEXT NOT NULL,        -- the queue id it had (not unique:
                                        -- a qid may come again after years)
    received_at   REAL NOT NULL,        -- when its transaction started
    left_at       REAL NOT NULL,        -- when it left the queue
    sender        TEXT NOT NULL,        -- MAIL FROM, '' for the null sender
    size          INTEGER,              -- body bytes
    client_addr   TEXT NOT NULL,
    client_name   TEXT NOT NULL,
    helo          TEXT NOT NULL,
    protocol      TEXT NOT NULL,
    auth_user     TEXT,
    dsn_of        TEXT                  -- a notification ferry made: about this qid
);
CREATE INDEX history_message_qid ON history_message(qid);
-- Pruning walks the oldest first.
CREATE INDEX history_message_left ON history_message(left_at);

-- One row per recipient with its final outcome.  The searched fields of
-- the message are copied here so one index serves a search and its order
-- (newest first): address, domain, sender and sender domain compare
-- without regard to case, as exact matches.
CREATE TABLE history_rcpt (
    id            INTEGER PRIMARY KEY,
    hmsg_id       INTEGER NOT NULL      -- its message in history_message
                  REFERENCES history_message(id) ON DELETE CASCADE,
    src_rcpt      INTEGER NOT NULL,     -- recipient.id it had in the queue
    left_at       REAL NOT NULL,        -- = history_message.left_at
    qid           TEXT NOT NULL,        -- = history_message.qid
    sender        TEXT NOT NULL COLLATE NOCASE,
    sender_domain TEXT NOT NULL COLLATE NOCASE, -- after the last '@', '' if none
    address       TEXT NOT NULL COLLATE NOCASE, -- RCPT TO
    domain        TEXT NOT NULL COLLATE NOCASE, -- after the last '@', '' if none
    status        TEXT NOT NULL         -- the final outcome ('deleted':
                                        -- pending when an operator
                                        -- deleted the message)
                  CHECK (status IN ('sent', 'bounced', 'expired',
                                    'deleted')),
    deferred      INTEGER NOT NULL,     -- attempts that ended deferred
    attempts      INTEGER NOT NULL,
    last_attempt  REAL,                 -- when the final result came
    delay         REAL,                 -- last_attempt - received_at
    relay         TEXT,                 -- of the last attempt, 'host[addr]:port'
    relay_host    TEXT COLLATE NOCASE,  -- its host part, for --route
    dsn           TEXT,                 -- of the last attempt
    reply         TEXT                  -- of the last attempt
);
CREATE INDEX history_rcpt_msg ON history_rcpt(hmsg_id);
CREATE INDEX history_rcpt_address ON history_rcpt(address, left_at);
CREATE INDEX history_rcpt_domain ON history_rcpt(domain, left_at);
CREATE INDEX history_rcpt_sender ON history_rcpt(sender, left_at);
CREATE INDEX history_rcpt_sender_domain ON history_rcpt(sender_domain, left_at);
CREATE INDEX history_rcpt_left ON history_rcpt(left_at);
CREATE INDEX history_rcpt_relay ON history_rcpt(relay_host, left_at);

-- Every attempt of a recipient in history, as the attempt table had it.
CREATE TABLE history_attempt (
    id            INTEGER PRIMARY KEY,
    hrcpt_id      INTEGER NOT NULL
                  REFERENCES history_rcpt(id) ON DELETE CASCADE,
    at            REAL NOT NULL,
    relay         TEXT NOT NULL,
    tls           TEXT,
    status        TEXT NOT NULL,
    dsn           TEXT NOT NULL,
    reply         TEXT NOT NULL
);
CREATE INDEX history_attempt_rcpt ON history_attempt(hrcpt_id);

-- Where a message leaving the queue is written first, in the transaction
-- that removes it: the same columns, no index and no foreign key, so a
-- delivery commit writes the last page of each of these three tables
-- (which the previous message's rows share) instead of a page of every
-- history index.  The runner moves them into the tables above in
-- batches, and before every search, show or prune; their ids are only
-- the links between them (the move gives the rows new ones).
CREATE TABLE history_new_message (
    id            INTEGER PRIMARY KEY,
    qid           TEXT NOT NULL,
    received_at   REAL NOT NULL,
    left_at       REAL NOT NULL,
    sender        TEXT NOT NULL,
    size          INTEGER,
    client_addr   TEXT NOT NULL,
    client_name   TEXT NOT NULL,
    helo          TEXT NOT NULL,
    protocol      TEXT NOT NULL,
    auth_user     TEXT,
    dsn_of        TEXT
);
CREATE TABLE history_new_rcpt (
    id            INTEGER PRIMARY KEY,
    hmsg_id       INTEGER NOT NULL,     -- history_new_message.id
    src_rcpt      INTEGER NOT NULL,
    left_at       REAL NOT NULL,
    qid           TEXT NOT NULL,
    sender        TEXT NOT NULL,
    sender_domain TEXT NOT NULL,
    address       TEXT NOT NULL,
    domain        TEXT NOT NULL,
    status        TEXT NOT NULL,
    deferred      INTEGER NOT NULL,
    attempts      INTEGER NOT NULL,
    last_attempt  REAL,
    delay         REAL,
    relay         TEXT,
    relay_host    TEXT,
    dsn           TEXT,
    reply         TEXT
);
CREATE TABLE history_new_attempt (
    id            INTEGER PRIMARY KEY,
    hrcpt_id      INTEGER NOT NULL,     -- history_new_rcpt.id
    at            REAL NOT NULL,
    relay         TEXT NOT NULL,
    tls           TEXT,
    status        TEXT NOT NULL,
    dsn           TEXT NOT NULL,
    reply         TEXT NOT NULL
);
-- HISTORY DDL END

-- What each route's upstream offered in the EHLO of the delivery agents'
-- last connection to it (route_caps.h), so that a restart does not
-- forget it.  A cache, not queue data: it has no schema version of its
-- own - store_open() creates it on any version (the part between the
-- ROUTE CAPS DDL markers), a ferry that does not know it leaves it
-- alone, and a salvage does not copy it (the next delivery learns it
-- again).
-- ROUTE CAPS DDL BEGIN
CREATE TABLE IF NOT EXISTS route_caps (
    route         TEXT PRIMARY KEY,     -- route name in ferry.conf
    hosts         TEXT NOT NULL,        -- its hosts when learned, comma-separated:
                                        -- forgotten when they change
    flags         INTEGER NOT NULL,     -- RCAP_* bits: SIZE 1, 8BITMIME 2,
                                        -- SMTPUTF8 4, DSN 8, REQUIRETLS 16
    size_max      INTEGER NOT NULL,     -- SIZE's number, 0 when none
    learned_at    REAL NOT NULL
);
-- ROUTE CAPS DDL END

-- What ferryctl status and the metrics count: the queue's messages by
-- state and its pending recipients, kept by the triggers below in the
-- same transactions as the rows they count, so reading them is one row
-- however long the queue (counting the rows took 15-30 ms at 100,000
-- messages, in the runner's turn).  Derived data, not queue data: no
-- schema version of its own - store_open() creates it on any version
-- (the part between the QUEUE COUNTS DDL markers, counting what is
-- there once), a ferry that does not know it still runs its triggers,
-- and a salvage does not copy it (the copied rows fire the triggers).
-- QUEUE COUNTS DDL BEGIN
CREATE TABLE IF NOT EXISTS queue_counts (
    id            INTEGER PRIMARY KEY CHECK (id = 1), -- the one row
    active        INTEGER NOT NULL,     -- messages in state 'active'
    hold          INTEGER NOT NULL,     -- messages in state 'hold'
    rcpts_pending INTEGER NOT NULL      -- recipients 'pending' with a next
                                        -- attempt (of complete messages)
);
INSERT OR IGNORE INTO queue_counts (id, active, hold, rcpts_pending)
    SELECT 1,
    (SELECT count(*) FROM message WHERE state = 'active'),
    (SELECT count(*) FROM message WHERE state = 'hold'),
    (SELECT count(*) FROM recipient WHERE state = 'pending'
     AND next_attempt IS NOT NULL);
CREATE TRIGGER IF NOT EXISTS queue_counts_message_insert
    AFTER INSERT ON message WHEN new.state IN ('active', 'hold')
BEGIN
    UPDATE queue_counts SET active = active + (new.state = 'active'),
        hold = hold + (new.state = 'hold') WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS queue_counts_message_delete
    AFTER DELETE ON message WHEN old.state IN ('active', 'hold')
BEGIN
    UPDATE queue_counts SET active = active - (old.state = 'active'),
        hold = hold - (old.state = 'hold') WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS queue_counts_message_state
    AFTER UPDATE OF state ON message WHEN old.state IS NOT new.state
BEGIN
    UPDATE queue_counts
        SET active = active + (new.state = 'active') - (old.state = 'active'),
        hold = hold + (new.state = 'hold') - (old.state = 'hold')
        WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS queue_counts_recipient_insert
    AFTER INSERT ON recipient
    WHEN new.state = 'pending' AND new.next_attempt IS NOT NULL
BEGIN
    UPDATE queue_counts SET rcpts_pending = rcpts_pending + 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS queue_counts_recipient_delete
    AFTER DELETE ON recipient
    WHEN old.state = 'pending' AND old.next_attempt IS NOT NULL
BEGIN
    UPDATE queue_counts SET rcpts_pending = rcpts_pending - 1 WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS queue_counts_recipient_update
    AFTER UPDATE OF state, next_attempt ON recipient
    WHEN (old.state = 'pending' AND old.next_attempt IS NOT NULL) IS NOT
         (new.state = 'pending' AND new.next_attempt IS NOT NULL)
BEGIN
    UPDATE queue_counts SET rcpts_pending = rcpts_pending
        + (new.state = 'pending' AND new.next_attempt IS NOT NULL)
        - (old.state = 'pending' AND old.next_attempt IS NOT NULL)
        WHERE id = 1;
END;
-- QUEUE COUNTS DDL END
