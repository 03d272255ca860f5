-- Alerts: thresholds, mutes, the state of every rule, and the outbox of
-- Telegram messages. Times are unix seconds. Tables holding rows of one
-- server have a `server_id` column; they are emptied when it is deleted.

-- Thresholds: an owner's defaults (server_id 0) and per-server overrides.
-- A NULL threshold turns the rule off.
CREATE TABLE alert_rules (
    owner_id   INTEGER NOT NULL,
    server_id  INTEGER NOT NULL,
    metric     TEXT    NOT NULL,
    threshold  REAL,
    for_secs   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (owner_id, server_id, metric)
);

CREATE INDEX alert_rules_server ON alert_rules (server_id);

-- Per server: when its last report arrived (offline detection), and a
-- counter every alert transaction bumps first, so they take turns.
CREATE TABLE alert_servers (
    server_id      INTEGER PRIMARY KEY,
    last_report_at INTEGER,
    version        INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX alert_servers_last_report ON alert_servers (last_report_at);

-- Mutes of one server, or (server_id 0) of all an owner's servers.
CREATE TABLE alert_mutes (
    owner_id    INTEGER NOT NULL,
    server_id   INTEGER NOT NULL,
    muted_until INTEGER NOT NULL,
    PRIMARY KEY (owner_id, server_id)
);

CREATE INDEX alert_mutes_until ON alert_mutes (muted_until);

-- The state of a rule on a server: `target` is the mount point for disk,
-- empty otherwise. `told` is whether the owner was told it fires.
CREATE TABLE alert_state (
    server_id    INTEGER NOT NULL,
    metric       TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    breach_since INTEGER,
    last_at      INTEGER,
    firing_since INTEGER,
    cleared_at   INTEGER,
    value        REAL    NOT NULL,
    threshold    REAL    NOT NULL,
    told         INTEGER NOT NULL,
    notified_at  INTEGER,
    PRIMARY KEY (server_id, metric, target)
);

CREATE INDEX alert_state_notified ON alert_state (told, notified_at);

-- Telegram messages waiting to be sent (status 0), sent (1) or refused for
-- good (2). Written in the same transaction as the change they announce.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id         INTEGER NOT NULL,
    text            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    status          INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    done_at         INTEGER,
    last_error      TEXT
);

CREATE INDEX outbox_status ON outbox (status, id);

-- Chats Telegram refused for good (the user blocked the bot) and since
-- when; they get messages again once the user talks to the bot after that
-- (which updates their `users` row).
CREATE TABLE unreachable_chats (
    chat_id INTEGER PRIMARY KEY,
    since   INTEGER NOT NULL
);
