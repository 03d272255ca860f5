-- Core tables: roles, users, servers, reports, used nonces, leases and the
-- queue of deleted servers whose reports are still being removed.
-- Times are unix seconds (INTEGER); figures are REAL; sizes are bytes.

CREATE TABLE roles (
    role_id     INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    -- Bit set: 1 = may use the bot and own servers, 2 = may manage users.
    permission  INTEGER NOT NULL,
    -- Most servers a member may own; NULL means no limit.
    max_servers INTEGER
);

INSERT INTO roles (role_id, name, permission, max_servers) VALUES
    (1, 'admin', 3, NULL),
    (2, 'user', 1, 20),
    (3, 'banned', 0, 0);

CREATE TABLE users (
    -- The Telegram user id.
    user_id    INTEGER PRIMARY KEY,
    username   TEXT,
    nickname   TEXT,
    role_id    INTEGER NOT NULL DEFAULT 2,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX users_username ON users (username COLLATE NOCASE);

CREATE TABLE servers (
    -- AUTOINCREMENT: an id is never reused after a delete.
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id          INTEGER NOT NULL,
    -- Unique per owner regardless of case; shown as typed.
    name              TEXT    NOT NULL COLLATE NOCASE,
    key_id            TEXT    NOT NULL UNIQUE,
    secret            TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    -- Arrival time of the last accepted report.
    last_seen_at      INTEGER,
    -- collected_at of the last accepted report.
    last_collected_at INTEGER,
    -- Fixed one-minute window counting accepted reports (arrival cap).
    window_start      INTEGER NOT NULL DEFAULT 0,
    window_count      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (owner_id, name)
);

CREATE TABLE reports (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id         INTEGER NOT NULL,
    collected_at      INTEGER NOT NULL,
    received_at       INTEGER NOT NULL,
    hostname          TEXT    NOT NULL,
    boot_time         INTEGER NOT NULL,
    cpu_percent       REAL    NOT NULL,
    cpu_cores         INTEGER NOT NULL,
    load1             REAL,
    load5             REAL,
    load15            REAL,
    mem_total         INTEGER NOT NULL,
    mem_used          INTEGER NOT NULL,
    mem_available     INTEGER NOT NULL,
    swap_total        INTEGER NOT NULL,
    swap_used         INTEGER NOT NULL,
    disk_total        INTEGER NOT NULL,
    disk_used         INTEGER NOT NULL,
    disk_max_percent  REAL    NOT NULL,
    net_rx            INTEGER NOT NULL,
    net_tx            INTEGER NOT NULL,
    process_count     INTEGER NOT NULL,
    -- The whole report as compact JSON: the report is rebuilt from it.
    detail            TEXT    NOT NULL
);

CREATE UNIQUE INDEX reports_server_collected ON reports (server_id, collected_at);

CREATE TABLE used_nonces (
    server_id  INTEGER NOT NULL,
    nonce      TEXT    NOT NULL,
    -- After this time the request's timestamp is outside the window anyway.
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (server_id, nonce)
) WITHOUT ROWID;

CREATE INDEX used_nonces_expires ON used_nonces (expires_at);

CREATE TABLE server_purges (
    server_id    INTEGER PRIMARY KEY,
    requested_at INTEGER NOT NULL
);

CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
