//! What a new host fetches to join: `GET /install.sh` and `/install.ps1`
//! (the installers with this server's public URL preset, so the one line a
//! user pastes needs nothing but the auth code) and `GET /agent/<os>-<arch>`
//! (the agent binaries, from a directory the administrator fills).

mod binaries;
mod preset;

pub use preset::{PresetError, check_public_url};

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use preset::Installer;

/// What the install routes need from the configuration.
#[derive(Debug, Clone)]
pub struct InstallSettings {
    /// The server's public base URL, preset in the served installers.
    pub public_url: String,
    /// Directory holding agent binaries named `<os>-<arch>[.exe]`
    /// (`linux-x86_64`, `linux-aarch64`, `windows-x86_64.exe`, ...).
    pub agent_dir: Option<PathBuf>,
}

/// The installers are built once, when the router is: the public URL does not
/// change while the server runs.
struct InstallState {
    shell: Result<Bytes, PresetError>,
    powershell: Result<Bytes, PresetError>,
    agent_dir: Option<PathBuf>,
}

/// Routes serving the installers and agent binaries.
pub fn router(settings: InstallSettings) -> Router {
    let build = |installer: Installer| {
        let served = installer.with_server(&settings.public_url).map(Bytes::from);
        if let Err(e) = &served {
            tracing::warn!(
                installer = installer.name(),
                error = %e,
                "the installer will not be served until SERVERSAN_PUBLIC_URL is fixed"
            );
        }
        served
    };
    let state = Arc::new(InstallState {
        shell: build(Installer::Shell),
        powershell: build(Installer::PowerShell),
        agent_dir: settings.agent_dir,
    });
    Router::new()
        .route("/install.sh", get(install_sh))
        .route("/install.ps1", get(install_ps1))
        .route("/agent/{platform}", get(agent_binary))
        .with_state(state)
}

async fn install_sh(State(state): State<Arc<InstallState>>) -> Response {
    script(Installer::Shell, &state.shell)
}

async fn install_ps1(State(state): State<Arc<InstallState>>) -> Response {
    script(Installer::PowerShell, &state.powershell)
}

fn script(installer: Installer, served: &Result<Bytes, PresetError>) -> Response {
    match served {
        // text/plain so a browser shows the script to whoever wants to read
        // it before piping it into a root shell.
        Ok(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            body.clone(),
        )
            .into_response(),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "this server cannot serve {}: {e}; its administrator must fix SERVERSAN_PUBLIC_URL",
                installer.name()
            ),
        ),
    }
}

async fn agent_binary(
    State(state): State<Arc<InstallState>>,
    platform: Result<Path<String>, PathRejection>,
) -> Response {
    // A segment that does not even decode is an unknown platform too.
    let platform = platform.map(|Path(p)| p).unwrap_or_default();
    binaries::serve(state.agent_dir.as_deref(), &platform).await
}

/// The JSON refusal every ServerSan route answers with.
fn json_error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}
