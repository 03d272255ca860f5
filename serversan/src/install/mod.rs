//! `GET /install.sh`, `/install.ps1` and `/agent/<os>-<arch>`.

use std::path::PathBuf;

/// What the install routes need from the configuration.
#[derive(Debug, Clone)]
pub struct InstallSettings {
    /// The server's public base URL, preset in the served installers.
    pub public_url: String,
    /// Directory holding agent binaries named `<os>-<arch>[.exe]`.
    pub agent_dir: Option<PathBuf>,
}

/// Routes serving the installers and agent binaries.
pub fn router(_settings: InstallSettings) -> axum::Router {
    axum::Router::new()
}
