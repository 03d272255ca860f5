//! Managing servers from the command line (`serversan server …`), so
//! operators can script and the agent can be installed before, or without,
//! the Telegram bot.

use std::io::Write;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::Config;
use crate::storage::{ServerName, Storage, StorageError, StorageOptions, unix_now};

/// `serversan server …`
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Add a server; prints its auth code alone on the last line
    Add {
        /// 1-32 letters, digits, dots, dashes or underscores
        name: String,
        /// Telegram user id of the owner (created if unknown)
        #[arg(long, value_name = "TELEGRAM_ID")]
        owner: i64,
    },
    /// List servers (all, or one owner's)
    List {
        /// Only this owner's servers
        #[arg(long, value_name = "TELEGRAM_ID")]
        owner: Option<i64>,
    },
    /// Delete a server and all its reports; its code stops working at once
    Delete {
        name: String,
        /// Telegram user id of the owner
        #[arg(long, value_name = "TELEGRAM_ID")]
        owner: i64,
    },
}

/// Opens the database (creating and migrating it if needed) and runs `cmd`,
/// writing its answer to `out`.
pub async fn run(cmd: ServerCommand, config: &Config, out: &mut impl Write) -> anyhow::Result<()> {
    let storage = Storage::connect(&StorageOptions::from_config(config)).await?;
    storage.migrate().await?;
    let result = execute(cmd, config, &storage, out).await;
    storage.close().await;
    result
}

async fn execute(
    cmd: ServerCommand,
    config: &Config,
    storage: &Storage,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match cmd {
        ServerCommand::Add { name, owner } => {
            check_owner(owner)?;
            let name = ServerName::parse(&name)?;
            let (server, code) = match storage.create_server(owner, &name).await {
                Err(StorageError::NameTaken(_)) => {
                    bail!("owner {owner} already has a server named {name}")
                }
                other => other?,
            };
            writeln!(
                out,
                "Server {} (id {}) added for owner {owner}.",
                server.name, server.id
            )?;
            writeln!(out, "Install the agent on that host with:")?;
            writeln!(
                out,
                "  curl -fsSL {}/install.sh | sudo bash -s -- {code}",
                config.public_url()
            )?;
            writeln!(out, "Auth code (shown once, keep it secret):")?;
            writeln!(out, "{code}")?;
        }
        ServerCommand::List { owner } => {
            let servers = match owner {
                Some(owner) => storage.list_servers(owner).await?,
                None => storage.list_all_servers().await?,
            };
            let now = unix_now();
            writeln!(
                out,
                "{:<20} {:<32} {:<32} {:<10} LAST SEEN",
                "OWNER", "NAME", "KEY ID", "CREATED"
            )?;
            for s in &servers {
                let seen = s
                    .last_seen_at
                    .map_or_else(|| "never".into(), |t| age(t, now));
                writeln!(
                    out,
                    "{:<20} {:<32} {:<32} {:<10} {seen}",
                    s.owner_id,
                    s.name,
                    s.key_id,
                    age(s.created_at, now),
                )?;
            }
            if servers.is_empty() {
                writeln!(out, "(no servers)")?;
            }
        }
        ServerCommand::Delete { name, owner } => {
            check_owner(owner)?;
            let server = storage
                .find_server(owner, &name)
                .await?
                .with_context(|| format!("owner {owner} has no server named {name}"))?;
            if !storage.delete_server(server.id, owner).await? {
                bail!("owner {owner} has no server named {name}");
            }
            writeln!(
                out,
                "Server {} deleted with its reports; its auth code no longer works.",
                server.name
            )?;
        }
    }
    Ok(())
}

fn check_owner(owner: i64) -> anyhow::Result<()> {
    if owner <= 0 {
        bail!("--owner must be a Telegram user id (a positive number)");
    }
    Ok(())
}

/// How long ago `ts` was, roughly: `42s ago`, `5m ago`, `3h ago`, `12d ago`.
fn age(ts: i64, now: i64) -> String {
    let secs = (now - ts).max(0);
    let (n, unit) = match secs {
        0..60 => (secs, "s"),
        60..3600 => (secs / 60, "m"),
        3600..86_400 => (secs / 3600, "h"),
        _ => (secs / 86_400, "d"),
    };
    format!("{n}{unit} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(100, 100), "0s ago");
        assert_eq!(age(100, 159), "59s ago");
        assert_eq!(age(0, 3599), "59m ago");
        assert_eq!(age(0, 7200), "2h ago");
        assert_eq!(age(0, 86_400 * 12 + 5), "12d ago");
        assert_eq!(age(200, 100), "0s ago", "clock skew shows as now");
    }
}
