//! `nfvhost new`: a VNF crate outside this repository, from a template in
//! `host/templates/` (embedded in the binary), that builds to wasm with one
//! command, has native unit tests, a README with its configuration keys, a
//! chain file that deploys it between two test hosts, and captures for
//! `nfvhost test`.

use std::path::{Path, PathBuf};

use crate::chain::names::{self, NameKind};

/// A template of `nfvhost new`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// A bump in the wire between two ports, with a config key and counters.
    Bump,
    /// A small IPv4 router: connected subnets, a default gateway, ARP.
    Router,
}

/// One file of a template: its path in the new crate, and its contents.
enum Content {
    Text(&'static str),
    Bytes(&'static [u8]),
}

macro_rules! text {
    ($t:literal, $f:literal) => {
        Content::Text(include_str!(concat!("../../templates/", $t, "/", $f)))
    };
}
macro_rules! bytes {
    ($t:literal, $f:literal) => {
        Content::Bytes(include_bytes!(concat!("../../templates/", $t, "/", $f)))
    };
}

const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

/// The files of the template in `host/templates/<dir>`: the same set for
/// every template.
macro_rules! template_files {
    ($t:literal) => {
        vec![
            ("Cargo.toml", text!($t, "Cargo.toml")),
            (".cargo/config.toml", text!($t, "cargo-config.toml")),
            (".gitignore", text!($t, "gitignore")),
            ("rust-toolchain.toml", Content::Text("{{toolchain}}")),
            ("src/lib.rs", text!($t, "lib.rs")),
            ("README.md", text!($t, "README.md")),
            ("chain.yaml", text!($t, "chain.yaml")),
            ("pcap/in-lan.pcap", bytes!($t, "pcap/in-lan.pcap")),
            ("pcap/in-wan.pcap", bytes!($t, "pcap/in-wan.pcap")),
            ("pcap/expect/lan.pcap", bytes!($t, "pcap/expect/lan.pcap")),
            ("pcap/expect/wan.pcap", bytes!($t, "pcap/expect/wan.pcap")),
        ]
    };
}

impl Template {
    fn files(self) -> Vec<(&'static str, Content)> {
        match self {
            Template::Bump => template_files!("bump"),
            Template::Router => template_files!("router"),
        }
    }
}

/// Errors of `nfvhost new`.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{name}` is not a crate name: {why}")]
    BadName { name: String, why: String },
    #[error(
        "{0} already exists; nfvhost new never overwrites (choose another --path or remove it)"
    )]
    Exists(PathBuf),
    #[error(
        "the vnf-sdk crate is not at {0}; pass the nfvhost checkout's vnf-sdk directory with --sdk"
    )]
    NoSdk(PathBuf),
    #[error("couldn't write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Most characters of a crate name (crates.io's limit).
pub const MAX_CRATE_NAME: usize = 64;

/// Names cargo refuses for a package (keywords and the standard crates).
const RESERVED: &[&str] = &[
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
    "self",
    "super",
    "crate",
    "Self",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "static",
    "struct",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "async",
    "await",
    "dyn",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "override",
    "priv",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "try",
    "gen",
];

/// Checks `name` with cargo's rules for a package name: ASCII letters,
/// digits, `-` and `_`, starting with a letter, at most
/// [`MAX_CRATE_NAME`] characters, not a keyword or a standard crate.
pub fn check_crate_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |why: &str| {
        Err(ScaffoldError::BadName {
            name: name.escape_default().to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() || name.len() > MAX_CRATE_NAME {
        return bad(&format!("use 1 to {MAX_CRATE_NAME} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return bad("start it with a letter");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return bad(&format!(
            "`{}` is not allowed; use ASCII letters, digits, `-` and `_` (a path goes in --path)",
            c.escape_default()
        ));
    }
    if RESERVED.contains(&name) {
        return bad("it is a Rust keyword or a standard crate");
    }
    Ok(())
}

/// A chain name for the crate's chain file: lowercase, `_` as `-`, cut to
/// the chain-name limit.
fn chain_name(name: &str) -> String {
    let mut c: String = name
        .to_ascii_lowercase()
        .replace('_', "-")
        .chars()
        .take(names::MAX_CHAIN_NAME)
        .collect();
    while c.ends_with('-') {
        c.pop();
    }
    debug_assert!(names::check(NameKind::Chain, &c).is_ok(), "{c}");
    c
}

fn render(text: &str, name: &str, sdk: &Path) -> String {
    text.replace("{{toolchain}}", TOOLCHAIN)
        .replace("{{name}}", name)
        .replace("{{ident}}", &name.replace('-', "_"))
        .replace("{{chain}}", &chain_name(name))
        .replace("{{sdk}}", &sdk.display().to_string())
}

/// The vnf-sdk of the checkout this binary was built from.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vnf-sdk")
}

/// Creates the crate `name` in `dir` (which must not exist) from
/// `template`, depending on the vnf-sdk at `sdk`. Returns the files
/// written. On failure nothing is left behind.
pub fn create(
    dir: &Path,
    name: &str,
    template: Template,
    sdk: &Path,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    check_crate_name(name)?;
    let sdk = std::fs::canonicalize(sdk)
        .ok()
        .filter(|s| s.join("Cargo.toml").is_file())
        .ok_or_else(|| ScaffoldError::NoSdk(sdk.to_owned()))?;
    if std::fs::symlink_metadata(dir).is_ok() {
        return Err(ScaffoldError::Exists(dir.to_owned()));
    }
    let write_err = |path: &Path, source| ScaffoldError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| write_err(parent, e))?;
    }
    // create_dir fails if another process made `dir` meanwhile: we never
    // write into a directory we did not create.
    std::fs::create_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => ScaffoldError::Exists(dir.to_owned()),
        _ => write_err(dir, e),
    })?;
    let result = write_files(dir, name, template, &sdk);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn write_files(
    dir: &Path,
    name: &str,
    template: Template,
    sdk: &Path,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    let mut written = Vec::new();
    for (rel, content) in template.files() {
        let path = dir.join(rel);
        let err = |source| ScaffoldError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        match content {
            Content::Text(t) => std::fs::write(&path, render(t, name, sdk)),
            Content::Bytes(b) => std::fs::write(&path, b),
        }
        .map_err(err)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_follow_cargos_rules() {
        for ok in ["my-vnf", "rate_limiter", "A1", "x"] {
            check_crate_name(ok).unwrap();
        }
        for (bad, why) in [
            ("", "1 to 64"),
            ("1vnf", "start it with a letter"),
            ("../evil", "start it with a letter"),
            ("a/b", "`/` is not allowed"),
            ("a b", "` ` is not allowed"),
            ("std", "keyword or a standard crate"),
            ("fn", "keyword"),
        ] {
            let e = check_crate_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_crate_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn chain_names_fit_the_chain_rule() {
        assert_eq!(chain_name("My_Rate_Limiter"), "my-rate-limi");
        assert_eq!(chain_name("abcdefghijk_x"), "abcdefghijk");
    }

    #[test]
    fn creates_the_crate_once_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("deep/my-vnf");
        let files = create(&dir, "my-vnf", Template::Bump, &default_sdk()).unwrap();
        assert!(files.iter().all(|f| f.starts_with(&dir)));
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"my-vnf\""), "{cargo}");
        assert!(!cargo.contains("{{"), "{cargo}");
        let chain = std::fs::read_to_string(dir.join("chain.yaml")).unwrap();
        assert!(chain.contains("release/my_vnf.wasm"), "{chain}");
        // The chain files are valid as generated.
        crate::chain::parse("chain.yaml", &chain).unwrap();
        let router = tmp.path().join("r");
        create(&router, "r", Template::Router, &default_sdk()).unwrap();
        let text = std::fs::read_to_string(router.join("chain.yaml")).unwrap();
        crate::chain::parse("chain.yaml", &text).unwrap();
        let e = create(&dir, "my-vnf", Template::Bump, &default_sdk()).unwrap_err();
        assert!(matches!(e, ScaffoldError::Exists(_)), "{e}");
        let e = create(&tmp.path().join("x"), "x", Template::Bump, tmp.path()).unwrap_err();
        assert!(matches!(e, ScaffoldError::NoSdk(_)), "{e}");
        assert!(!tmp.path().join("x").exists());
    }
}
