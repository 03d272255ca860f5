//! The installers as served: the scripts from the repository root with this
//! server's public URL written into their one preset line.
//!
//! The URL ends up inside a quoted shell or PowerShell string and in the
//! agent's TOML file, so it is checked against a short list of characters
//! rather than escaped: a URL that needs escaping is refused.

/// Longest public URL written into an installer.
const MAX_URL_LEN: usize = 2048;

/// One of the two installers, embedded at build time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Installer {
    /// `install.sh`, for Linux.
    Shell,
    /// `install.ps1`, for Windows.
    PowerShell,
}

/// Why an installer cannot be served with the configured public URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresetError {
    #[error("the public URL must start with http:// or https://")]
    Scheme,
    #[error("the public URL has no host after the scheme")]
    NoHost,
    #[error("the public URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error(
        "the public URL contains {0:?}; only letters, digits and . _ ~ : % [ ] - / are allowed \
         (no quotes, spaces, query or fragment)"
    )]
    Character(char),
    /// A build defect, caught by this module's tests.
    #[error("{0} does not contain its preset line exactly once")]
    Template(&'static str),
}

impl Installer {
    /// The file name, as served and as in the repository.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Shell => "install.sh",
            Self::PowerShell => "install.ps1",
        }
    }

    fn template(self) -> &'static str {
        match self {
            Self::Shell => include_str!("../../../install.sh"),
            Self::PowerShell => include_str!("../../../install.ps1"),
        }
    }

    /// The preset line up to and after its (empty) single-quoted value.
    fn preset_quotes(self) -> (&'static str, &'static str) {
        match self {
            Self::Shell => ("DEFAULT_SERVER='", "'"),
            Self::PowerShell => ("$DefaultServer = '", "'"),
        }
    }

    /// The installer with `public_url` preset. An empty URL leaves the
    /// installer as it is (it then asks for `--server`).
    pub(crate) fn with_server(self, public_url: &str) -> Result<String, PresetError> {
        let template = self.template();
        let (open, close) = self.preset_quotes();
        let marker = format!("{open}{close}");
        let is_marker = |line: &str| line.trim_end_matches(['\n', '\r']) == marker;
        if template
            .split_inclusive('\n')
            .filter(|l| is_marker(l))
            .count()
            != 1
        {
            return Err(PresetError::Template(self.name()));
        }
        if public_url.is_empty() {
            return Ok(template.to_owned());
        }
        let url = check_public_url(public_url)?;
        let mut served = String::with_capacity(template.len() + url.len());
        for line in template.split_inclusive('\n') {
            if is_marker(line) {
                served.push_str(open);
                served.push_str(url);
                served.push_str(close);
                served.push('\n');
            } else {
                served.push_str(line);
            }
        }
        Ok(served)
    }
}

/// The URL without trailing slashes, if it is an http(s) URL made only of
/// characters that mean nothing to a shell, PowerShell or TOML string.
///
/// The installers apply the same rule to `--server` / `-Server`.
pub fn check_public_url(url: &str) -> Result<&str, PresetError> {
    if url.len() > MAX_URL_LEN {
        return Err(PresetError::TooLong);
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(PresetError::Scheme)?;
    if let Some(c) = url.chars().find(|&c| !is_allowed(c)) {
        return Err(PresetError::Character(c));
    }
    if rest.is_empty() || rest.starts_with('/') {
        return Err(PresetError::NoHost);
    }
    Ok(url.trim_end_matches('/'))
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | ':' | '%' | '[' | ']' | '-' | '/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [Installer; 2] = [Installer::Shell, Installer::PowerShell];

    #[test]
    fn each_template_has_one_preset_line() {
        for installer in BOTH {
            let (open, close) = installer.preset_quotes();
            let marker = format!("{open}{close}");
            let count = installer
                .template()
                .lines()
                .filter(|l| l.trim_end() == marker)
                .count();
            assert_eq!(count, 1, "{}", installer.name());
        }
    }

    #[test]
    fn preset_changes_only_the_preset_line() {
        for installer in BOTH {
            let template = installer.template();
            let served = installer
                .with_server("https://mon.example:8443/base/")
                .unwrap();
            let changed: Vec<(&str, &str)> = template
                .lines()
                .zip(served.lines())
                .filter(|(a, b)| a != b)
                .collect();
            let (open, close) = installer.preset_quotes();
            assert_eq!(
                changed,
                vec![(
                    format!("{open}{close}").as_str(),
                    format!("{open}https://mon.example:8443/base{close}").as_str()
                )],
                "{}",
                installer.name()
            );
            assert_eq!(template.lines().count(), served.lines().count());
        }
    }

    #[test]
    fn empty_url_serves_the_template_unchanged() {
        for installer in BOTH {
            assert_eq!(installer.with_server("").unwrap(), installer.template());
        }
    }

    #[test]
    fn accepts_ordinary_base_urls() {
        for (url, want) in [
            ("https://mon.example", "https://mon.example"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            (
                "https://[2001:db8::1]:8443/serversan//",
                "https://[2001:db8::1]:8443/serversan",
            ),
            (
                "https://xn--bcher-kva.example/a_b~c%20d",
                "https://xn--bcher-kva.example/a_b~c%20d",
            ),
        ] {
            assert_eq!(check_public_url(url), Ok(want), "{url}");
        }
    }

    #[test]
    fn refuses_urls_that_could_break_out_of_the_quotes() {
        let refused = [
            ("ftp://mon.example", PresetError::Scheme),
            ("mon.example", PresetError::Scheme),
            ("HTTPS://mon.example", PresetError::Scheme),
            ("https://", PresetError::NoHost),
            ("https:///path", PresetError::NoHost),
            ("https://a'; rm -rf / #", PresetError::Character('\'')),
            ("https://a\"b", PresetError::Character('"')),
            ("https://a\\b", PresetError::Character('\\')),
            ("https://a`id`", PresetError::Character('`')),
            ("https://a$(id)", PresetError::Character('$')),
            ("https://a b", PresetError::Character(' ')),
            ("https://a\nb", PresetError::Character('\n')),
            ("https://a\rb", PresetError::Character('\r')),
            ("https://a\u{0}b", PresetError::Character('\u{0}')),
            ("https://a\u{2019}b", PresetError::Character('\u{2019}')),
            ("https://a/?q=1", PresetError::Character('?')),
            ("https://a/#frag", PresetError::Character('#')),
            ("https://user@a", PresetError::Character('@')),
            ("https://a;b", PresetError::Character(';')),
        ];
        for (url, want) in refused {
            assert_eq!(check_public_url(url), Err(want.clone()), "{url:?}");
            for installer in BOTH {
                assert_eq!(installer.with_server(url), Err(want.clone()), "{url:?}");
            }
        }
        let long = format!("https://a/{}", "b".repeat(MAX_URL_LEN));
        assert_eq!(check_public_url(&long), Err(PresetError::TooLong));
    }
}
