-- Core tables: roles, users, servers, reports, used nonces, leases and the
-- queue of deleted servers whose reports are still being removed.
-- Times are unix seconds (BIGINT); figures are DOUBLE; sizes are bytes.
-- InnoDB with a primary key everywhere (Galera needs both). Identifiers
-- compared byte for byte (key ids, nonces) use ascii_bin; server names are
-- unique per owner regardless of case (ascii_general_ci), like on SQLite.

CREATE TABLE roles (
    role_id     BIGINT      NOT NULL PRIMARY KEY,
    name        VARCHAR(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    -- Bit set: 1 = may use the bot and own servers, 2 = may manage users.
    permission  BIGINT      NOT NULL,
    -- Most servers a member may own; NULL means no limit.
    max_servers BIGINT      NULL,
    UNIQUE KEY roles_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO roles (role_id, name, permission, max_servers) VALUES
    (1, 'admin', 3, NULL),
    (2, 'user', 1, 20),
    (3, 'banned', 0, 0);

CREATE TABLE users (
    -- The Telegram user id.
    user_id    BIGINT       NOT NULL PRIMARY KEY,
    username   VARCHAR(255) NULL,
    nickname   VARCHAR(255) NULL,
    role_id    BIGINT       NOT NULL DEFAULT 2,
    created_at BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    KEY users_username (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE servers (
    id                BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    owner_id          BIGINT      NOT NULL,
    name              VARCHAR(32) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    key_id            VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    secret            VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at        BIGINT      NOT NULL,
    -- Arrival time of the last accepted report.
    last_seen_at      BIGINT      NULL,
    -- collected_at of the last accepted report.
    last_collected_at BIGINT      NULL,
    -- Fixed one-minute window counting accepted reports (arrival cap).
    window_start      BIGINT      NOT NULL DEFAULT 0,
    window_count      BIGINT      NOT NULL DEFAULT 0,
    UNIQUE KEY servers_key_id (key_id),
    UNIQUE KEY servers_owner_name (owner_id, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE reports (
    id                BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    server_id         BIGINT       NOT NULL,
    collected_at      BIGINT       NOT NULL,
    received_at       BIGINT       NOT NULL,
    hostname          VARCHAR(1024) NOT NULL,
    boot_time         BIGINT       NOT NULL,
    cpu_percent       DOUBLE       NOT NULL,
    cpu_cores         BIGINT       NOT NULL,
    load1             DOUBLE       NULL,
    load5             DOUBLE       NULL,
    load15            DOUBLE       NULL,
    mem_total         BIGINT       NOT NULL,
    mem_used          BIGINT       NOT NULL,
    mem_available     BIGINT       NOT NULL,
    swap_total        BIGINT       NOT NULL,
    swap_used         BIGINT       NOT NULL,
    disk_total        BIGINT       NOT NULL,
    disk_used         BIGINT       NOT NULL,
    disk_max_percent  DOUBLE       NOT NULL,
    net_rx            BIGINT       NOT NULL,
    net_tx            BIGINT       NOT NULL,
    process_count     BIGINT       NOT NULL,
    -- The whole report as compact JSON: the report is rebuilt from it.
    detail            MEDIUMTEXT   NOT NULL,
    UNIQUE KEY reports_server_collected (server_id, collected_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE used_nonces (
    server_id  BIGINT      NOT NULL,
    nonce      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- After this time the request's timestamp is outside the window anyway.
    expires_at BIGINT      NOT NULL,
    PRIMARY KEY (server_id, nonce),
    KEY used_nonces_expires (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;

CREATE TABLE server_purges (
    server_id    BIGINT NOT NULL PRIMARY KEY,
    requested_at BIGINT NOT NULL
) ENGINE = InnoDB;

CREATE TABLE leases (
    name       VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    holder     VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    expires_at BIGINT       NOT NULL
) ENGINE = InnoDB;
