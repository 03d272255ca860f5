//! Users (Telegram accounts) and their roles.

use std::fmt;
use std::str::FromStr;

use super::db::{Columns, Db, retry_conflicts, with_pool};
use super::{Result, Storage, StorageError, unix_now};

/// What a role allows, as a bit set stored in `roles.permission`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions(pub i64);

impl Permissions {
    /// May use the bot and own servers.
    pub const USE: i64 = 1;
    /// May list users and change their roles.
    pub const ADMIN: i64 = 2;

    pub fn can_use(self) -> bool {
        self.0 & Self::USE != 0
    }
    pub fn is_admin(self) -> bool {
        self.0 & Self::ADMIN != 0
    }
}

/// The seeded roles (rows of `roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleName {
    Admin,
    User,
    Banned,
}

impl RoleName {
    pub const ALL: [RoleName; 3] = [RoleName::Admin, RoleName::User, RoleName::Banned];

    pub fn id(self) -> i64 {
        match self {
            RoleName::Admin => 1,
            RoleName::User => 2,
            RoleName::Banned => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Admin => "admin",
            RoleName::User => "user",
            RoleName::Banned => "banned",
        }
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RoleName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RoleName::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| "a role is admin, user or banned".to_owned())
    }
}

/// A row of `roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub permission: Permissions,
    /// Most servers a member may own; `None` means no limit.
    pub max_servers: Option<i64>,
}

/// A user with their role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The Telegram user id.
    pub user_id: i64,
    /// Telegram @username, without the `@`.
    pub username: Option<String>,
    /// Display name (first and last name).
    pub nickname: Option<String>,
    pub role: Role,
    pub created_at: i64,
}

/// What Telegram tells us about a user, recorded on each contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserProfile {
    pub user_id: i64,
    pub username: Option<String>,
    pub nickname: Option<String>,
}

/// Longest stored username or nickname, in characters (the columns hold 255).
const MAX_NAME_CHARS: usize = 255;

fn bounded(s: Option<&str>) -> Option<String> {
    s.map(|s| s.chars().take(MAX_NAME_CHARS).collect())
}

const USER_COLUMNS: &str = "SELECT u.user_id, u.username, u.nickname, u.created_at, \
     r.role_id, r.name AS role_name, r.permission, r.max_servers \
     FROM users u JOIN roles r ON r.role_id = u.role_id";

fn user_from_row(row: &impl Columns) -> Result<User, sqlx::Error> {
    Ok(User {
        user_id: row.int("user_id")?,
        username: row.opt_text("username")?,
        nickname: row.opt_text("nickname")?,
        created_at: row.int("created_at")?,
        role: role_from_row(row, "role_name")?,
    })
}

fn role_from_row(row: &impl Columns, name_col: &str) -> Result<Role, sqlx::Error> {
    Ok(Role {
        id: row.int("role_id")?,
        name: row.text(name_col)?,
        permission: Permissions(row.int("permission")?),
        max_servers: row.opt_int("max_servers")?,
    })
}

/// Inserts a user with no profile unless one exists. Binds: user id, role
/// id, created_at, updated_at.
pub(super) fn ensure_user_sql(db: &Db) -> &'static str {
    db.sql(
        "INSERT INTO users (user_id, role_id, created_at, updated_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (user_id) DO NOTHING",
        "INSERT INTO users (user_id, role_id, created_at, updated_at) VALUES (?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE user_id = user_id",
    )
}

impl Storage {
    /// Records a user (new ones get the `user` role) or refreshes their
    /// username and nickname, keeping their role.
    pub async fn upsert_user(&self, profile: &UserProfile) -> Result<User> {
        let sql = self.db.sql(
            "INSERT INTO users (user_id, username, nickname, role_id, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, \
             nickname = excluded.nickname, updated_at = excluded.updated_at",
            "INSERT INTO users (user_id, username, nickname, role_id, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE username = VALUES(username), \
             nickname = VALUES(nickname), updated_at = VALUES(updated_at)",
        );
        let username = bounded(
            profile
                .username
                .as_deref()
                .map(|u| u.trim_start_matches('@')),
        );
        let nickname = bounded(profile.nickname.as_deref());
        let now = unix_now();
        retry_conflicts(|| async {
            // Every bot command starts here (see `Storage::write_turn`).
            let turn = self.write_turn().await;
            with_pool!(turn.db, pool => {
                sqlx::query(sql)
                    .bind(profile.user_id)
                    .bind(username.as_deref())
                    .bind(nickname.as_deref())
                    .bind(RoleName::User.id())
                    .bind(now)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })
        })
        .await?;
        self.get_user(profile.user_id)
            .await?
            .ok_or_else(|| StorageError::Corrupt("a user vanished right after being saved".into()))
    }

    /// Makes sure a user row exists (the CLI adds servers for owners who
    /// never talked to the bot); an existing user is left as is.
    pub async fn ensure_user(&self, user_id: i64) -> Result<()> {
        let sql = ensure_user_sql(&self.db);
        let now = unix_now();
        retry_conflicts(|| async {
            with_pool!(&self.db, pool => {
                sqlx::query(sql)
                    .bind(user_id)
                    .bind(RoleName::User.id())
                    .bind(now)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })
        })
        .await?;
        Ok(())
    }

    /// A user and their role.
    pub async fn get_user(&self, user_id: i64) -> Result<Option<User>> {
        let sql = sqlx::AssertSqlSafe(format!("{USER_COLUMNS} WHERE u.user_id = ?"));
        with_pool!(&self.db, pool => {
            let row = sqlx::query(sql).bind(user_id).fetch_optional(pool).await?;
            Ok(row.as_ref().map(user_from_row).transpose()?)
        })
    }

    /// A user by Telegram @username (with or without the `@`, any case).
    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let name = username.trim().trim_start_matches('@');
        if name.is_empty() {
            return Ok(None);
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "{USER_COLUMNS} WHERE LOWER(u.username) = LOWER(?) ORDER BY u.user_id LIMIT 1"
        ));
        with_pool!(&self.db, pool => {
            let row = sqlx::query(sql).bind(name).fetch_optional(pool).await?;
            Ok(row.as_ref().map(user_from_row).transpose()?)
        })
    }

    /// Every user, oldest first.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let sql = sqlx::AssertSqlSafe(format!("{USER_COLUMNS} ORDER BY u.created_at, u.user_id"));
        with_pool!(&self.db, pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
        })
    }

    /// Gives a user a role; `false` when no such user exists.
    pub async fn set_role(&self, user_id: i64, role: RoleName) -> Result<bool> {
        let now = unix_now();
        let done = retry_conflicts(|| async {
            let turn = self.write_turn().await;
            with_pool!(turn.db, pool => {
                sqlx::query("UPDATE users SET role_id = ?, updated_at = ? WHERE user_id = ?")
                    .bind(role.id())
                    .bind(now)
                    .bind(user_id)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })
        })
        .await?;
        Ok(done > 0)
    }

    /// Every role.
    pub async fn roles(&self) -> Result<Vec<Role>> {
        with_pool!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT role_id, name, permission, max_servers FROM roles ORDER BY role_id",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(|r| role_from_row(r, "name")).collect::<Result<_, _>>()?)
        })
    }
}
