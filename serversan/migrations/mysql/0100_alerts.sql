-- Alerts: thresholds, mutes, the state of every rule, and the outbox of
-- Telegram messages. Times are unix seconds (BIGINT); figures are DOUBLE.
-- Tables holding rows of one server have a `server_id` column; they are
-- emptied when it is deleted. InnoDB with a primary key everywhere.

-- Thresholds: an owner's defaults (server_id 0) and per-server overrides.
-- A NULL threshold turns the rule off.
CREATE TABLE alert_rules (
    owner_id   BIGINT      NOT NULL,
    server_id  BIGINT      NOT NULL,
    metric     VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    threshold  DOUBLE      NULL,
    for_secs   BIGINT      NOT NULL,
    updated_at BIGINT      NOT NULL,
    PRIMARY KEY (owner_id, server_id, metric),
    KEY alert_rules_server (server_id)
) ENGINE = InnoDB;

-- Per server: when its last report arrived (offline detection), and a
-- counter every alert transaction bumps first, so they take turns.
CREATE TABLE alert_servers (
    server_id      BIGINT NOT NULL PRIMARY KEY,
    last_report_at BIGINT NULL,
    version        BIGINT NOT NULL DEFAULT 0,
    KEY alert_servers_last_report (last_report_at)
) ENGINE = InnoDB;

-- Mutes of one server, or (server_id 0) of all an owner's servers.
CREATE TABLE alert_mutes (
    owner_id    BIGINT NOT NULL,
    server_id   BIGINT NOT NULL,
    muted_until BIGINT NOT NULL,
    PRIMARY KEY (owner_id, server_id),
    KEY alert_mutes_until (muted_until)
) ENGINE = InnoDB;

-- The state of a rule on a server: `target` is the mount point for disk,
-- empty otherwise. `told` is whether the owner was told it fires.
CREATE TABLE alert_state (
    server_id    BIGINT       NOT NULL,
    metric       VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    target       VARCHAR(255) NOT NULL,
    breach_since BIGINT       NULL,
    last_at      BIGINT       NULL,
    firing_since BIGINT       NULL,
    cleared_at   BIGINT       NULL,
    value        DOUBLE       NOT NULL,
    threshold    DOUBLE       NOT NULL,
    told         SMALLINT     NOT NULL,
    notified_at  BIGINT       NULL,
    PRIMARY KEY (server_id, metric, target),
    KEY alert_state_notified (told, notified_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Telegram messages waiting to be sent (status 0), sent (1) or refused for
-- good (2). Written in the same transaction as the change they announce.
CREATE TABLE outbox (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    chat_id         BIGINT       NOT NULL,
    text            MEDIUMTEXT   NOT NULL,
    created_at      BIGINT       NOT NULL,
    status          SMALLINT     NOT NULL DEFAULT 0,
    attempts        BIGINT       NOT NULL DEFAULT 0,
    next_attempt_at BIGINT       NOT NULL,
    done_at         BIGINT       NULL,
    last_error      VARCHAR(255) NULL,
    KEY outbox_status (status, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Chats Telegram refused for good (the user blocked the bot) and since
-- when; they get messages again once the user talks to the bot after that
-- (which updates their `users` row).
CREATE TABLE unreachable_chats (
    chat_id BIGINT NOT NULL PRIMARY KEY,
    since   BIGINT NOT NULL
) ENGINE = InnoDB;
