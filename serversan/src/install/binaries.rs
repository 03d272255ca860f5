//! `GET /agent/<os>-<arch>`: agent binaries from the configured directory.
//!
//! The request names a platform; the file name is built from the parsed
//! platform, never from the request, so nothing outside the directory can be
//! named (no `..`, no separators, no surprises in percent-decoding).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::json_error;

/// Operating systems an agent is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Os {
    Linux,
    Windows,
}

/// CPU architectures an agent is built for, named as in `install.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arch {
    X86_64,
    Aarch64,
    Armv7,
    I686,
    Riscv64,
}

/// An `<os>-<arch>` pair a binary can be served for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Platform {
    os: Os,
    arch: Arch,
}

/// Every platform served, in the order error messages list them.
pub(crate) const PLATFORMS: [Platform; 7] = [
    Platform::new(Os::Linux, Arch::X86_64),
    Platform::new(Os::Linux, Arch::Aarch64),
    Platform::new(Os::Linux, Arch::Armv7),
    Platform::new(Os::Linux, Arch::I686),
    Platform::new(Os::Linux, Arch::Riscv64),
    Platform::new(Os::Windows, Arch::X86_64),
    Platform::new(Os::Windows, Arch::Aarch64),
];

impl Os {
    fn as_str(self) -> &'static str {
        match self {
            Self::Linux => "linux",
            Self::Windows => "windows",
        }
    }
}

impl Arch {
    fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
            Self::Armv7 => "armv7",
            Self::I686 => "i686",
            Self::Riscv64 => "riscv64",
        }
    }
}

impl Platform {
    const fn new(os: Os, arch: Arch) -> Self {
        Self { os, arch }
    }

    /// The binary's file name in the agent directory: `linux-x86_64`,
    /// `windows-x86_64.exe`.
    pub(crate) fn file_name(self) -> String {
        match self.os {
            Os::Linux => self.to_string(),
            Os::Windows => format!("{self}.exe"),
        }
    }

    /// The name a browser or `curl -OJ` saves the download under.
    fn download_name(self) -> &'static str {
        match self.os {
            Os::Linux => "serversan-agent",
            Os::Windows => "serversan-agent.exe",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.os.as_str(), self.arch.as_str())
    }
}

/// The platform name is not one a binary is served for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown agent platform; this server knows {}", platform_list())]
pub(crate) struct UnknownPlatform;

fn platform_list() -> String {
    PLATFORMS
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Platform {
    type Err = UnknownPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PLATFORMS
            .into_iter()
            .find(|p| p.to_string() == s)
            .ok_or(UnknownPlatform)
    }
}

/// Answers a request for `platform` (the raw path segment) from `agent_dir`.
pub(crate) async fn serve(agent_dir: Option<&Path>, platform: &str) -> Response {
    let platform = match platform.parse::<Platform>() {
        Ok(platform) => platform,
        Err(e) => return json_error(StatusCode::NOT_FOUND, e.to_string()),
    };
    let Some(dir) = agent_dir else {
        return json_error(
            StatusCode::NOT_FOUND,
            format!(
                "this server does not serve agent binaries (no agent directory is configured); \
                 install with --binary PATH, or ask the administrator to put {} in an agent directory",
                platform.file_name()
            ),
        );
    };
    let file_name = platform.file_name();
    let missing = || {
        json_error(
            StatusCode::NOT_FOUND,
            format!(
                "no agent binary for {platform} on this server: the administrator must put the \
                 file {file_name} in the agent directory"
            ),
        )
    };
    let path = dir.join(&file_name);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return missing(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot open agent binary");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the agent binary {file_name} cannot be read on this server"),
            );
        }
    };
    let len = match file.metadata().await {
        Ok(meta) if meta.is_file() && meta.len() > 0 => meta.len(),
        _ => return missing(),
    };
    let disposition = format!("attachment; filename=\"{}\"", platform.download_name());
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::try_from(disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_parses_back_from_its_name() {
        for platform in PLATFORMS {
            assert_eq!(platform.to_string().parse::<Platform>(), Ok(platform));
        }
    }

    #[test]
    fn file_names_are_built_from_the_platform() {
        let linux: Platform = "linux-x86_64".parse().unwrap();
        assert_eq!(linux.file_name(), "linux-x86_64");
        let windows: Platform = "windows-x86_64".parse().unwrap();
        assert_eq!(windows.file_name(), "windows-x86_64.exe");
        for platform in PLATFORMS {
            let name = platform.file_name();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
                "{name}"
            );
            assert!(!name.contains(".."), "{name}");
        }
    }

    #[test]
    fn anything_else_is_unknown() {
        for raw in [
            "",
            "linux",
            "linux-",
            "-x86_64",
            "Linux-x86_64",
            "linux-X86_64",
            "linux-amd64",
            "linux-x86_64.exe",
            "windows-x86_64.exe",
            "windows-armv7",
            "linux-x86_64/../../etc/passwd",
            "../linux-x86_64",
            "linux-x86_64\0",
            " linux-x86_64",
            "macos-aarch64",
        ] {
            assert_eq!(raw.parse::<Platform>(), Err(UnknownPlatform), "{raw:?}");
        }
    }
}
