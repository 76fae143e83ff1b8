//! The one rule for names that reach paths, namespaces, interfaces and
//! command lines: chain names, host and VNF names, interface and port names.
//!
//! Used by the chain-file decoder (with `file:line:col`) and by the command
//! line (`--chain`, node names), so both refuse exactly the same names.
//! Every name is plain ASCII: no shell metacharacters, no `/`, never `.` or
//! `..`, never starting with `-` (it would read as an option), bounded length.

use std::fmt;

/// Longest chain name (it prefixes namespace names).
pub const MAX_CHAIN_NAME: usize = 12;
/// Longest host or VNF name.
pub const MAX_NODE_NAME: usize = 15;
/// Longest interface / port name (Linux IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// What a name names; each kind has its own alphabet and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A chain: `[a-z0-9-]`, at most [`MAX_CHAIN_NAME`].
    Chain,
    /// A test host or VNF: `[a-z0-9-]`, at most [`MAX_NODE_NAME`].
    Node,
    /// An interface or port: `[A-Za-z0-9_.-]`, at most [`MAX_IFNAME`].
    Interface,
}

impl NameKind {
    fn max(self) -> usize {
        match self {
            NameKind::Chain => MAX_CHAIN_NAME,
            NameKind::Node => MAX_NODE_NAME,
            NameKind::Interface => MAX_IFNAME,
        }
    }

    fn allows(self, b: u8) -> bool {
        match self {
            NameKind::Chain | NameKind::Node => {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
            }
            NameKind::Interface => b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'),
        }
    }

    /// What to write instead, for the hint of an error.
    pub fn rule(self) -> String {
        match self {
            NameKind::Chain | NameKind::Node => format!(
                "use lowercase letters, digits and `-`, starting with a letter or digit, \
                 at most {} characters",
                self.max()
            ),
            NameKind::Interface => format!(
                "use 1 to {} letters, digits, `_`, `.` or `-`, not starting with `-` \
                 and not `.` or `..`, e.g. `eth0` or `lan`",
                self.max()
            ),
        }
    }
}

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// Longer than the kind allows.
    TooLong { len: usize, max: usize },
    /// A character outside the kind's alphabet (shown escaped).
    BadChar(char),
    /// Starts with `-`.
    LeadingDash,
    /// `.` or `..`.
    Dots,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "is empty"),
            NameError::TooLong { len, max } => {
                write!(f, "is {len} characters long; the limit is {max}")
            }
            NameError::BadChar(c) => {
                write!(f, "contains `{}`, which is not allowed", c.escape_default())
            }
            NameError::LeadingDash => write!(f, "starts with `-`"),
            NameError::Dots => write!(f, "is `.` or `..`"),
        }
    }
}

/// Checks `name` against the rule for `kind`.
pub fn check(kind: NameKind, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !c.is_ascii() || !kind.allows(c as u8))
    {
        return Err(NameError::BadChar(c));
    }
    if name.len() > kind.max() {
        return Err(NameError::TooLong {
            len: name.len(),
            max: kind.max(),
        });
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    if name.starts_with('-') {
        return Err(NameError::LeadingDash);
    }
    Ok(())
}

/// Whether `name` is a valid shipped VNF name (`module: router`): lowercase
/// letters, digits, `_` and `-`, at most 64 characters. It becomes part of
/// a file name (`vnf_<name>.wasm`) in the VNF search directories.
pub fn is_builtin_module(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A name from the command line, refused with the same rule as in a chain
/// file: `what` is e.g. "chain name".
#[derive(Debug, thiserror::Error)]
#[error("{what} `{shown}` {reason}; {hint}")]
pub struct BadName {
    what: &'static str,
    shown: String,
    reason: NameError,
    hint: String,
}

/// Checks a name given on the command line.
pub fn check_arg(kind: NameKind, what: &'static str, name: &str) -> Result<(), BadName> {
    check(kind, name).map_err(|reason| BadName {
        what,
        shown: name.escape_default().to_string(),
        reason,
        hint: kind.rule(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        assert_eq!(check(NameKind::Chain, "edge"), Ok(()));
        assert_eq!(check(NameKind::Node, "r1-x"), Ok(()));
        assert_eq!(check(NameKind::Interface, "eth0.100"), Ok(()));
        assert_eq!(check(NameKind::Interface, "Wan_1"), Ok(()));
        assert_eq!(check(NameKind::Interface, "abcdefghijklmno"), Ok(()));
    }

    #[test]
    fn hostile_names_are_refused() {
        for (kind, name) in [
            (NameKind::Interface, "e\";>QQ;\""),
            (NameKind::Interface, "a$b"),
            (NameKind::Interface, "a b"),
            (NameKind::Interface, "a/b"),
            (NameKind::Interface, "a:b"),
            (NameKind::Interface, "x\ny"),
            (NameKind::Interface, "é"),
            (NameKind::Interface, ".."),
            (NameKind::Interface, "."),
            (NameKind::Interface, "-sf"),
            (NameKind::Interface, "abcdefghijklmnop"),
            (NameKind::Interface, ""),
            (NameKind::Chain, ".."),
            (NameKind::Chain, "/tmp/x"),
            (NameKind::Chain, "../etc"),
            (NameKind::Chain, "A"),
            (NameKind::Chain, "abcdefghijklm"),
            (NameKind::Node, "-r"),
            (NameKind::Node, "r.1"),
        ] {
            assert!(check(kind, name).is_err(), "{kind:?} {name:?} passed");
        }
    }

    #[test]
    fn builtin_module_names_cannot_name_paths() {
        assert!(is_builtin_module("router"));
        assert!(is_builtin_module("my_nat-2"));
        for bad in ["", "../x", "a/b", "x.wasm", "-r", "Router"] {
            assert!(!is_builtin_module(bad), "{bad}");
        }
    }

    #[test]
    fn cli_error_says_what_and_escapes() {
        let e = check_arg(NameKind::Chain, "chain name", "../\x1b[2J").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("chain name `../\\u{1b}[2J` contains `.`"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
    }
}
