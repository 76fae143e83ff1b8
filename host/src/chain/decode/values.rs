//! Value parsers: names, sizes, MTUs, addresses, MACs and `config:`, each
//! reporting a clear error at the value's position.

use std::net::Ipv4Addr;

use super::super::spec::{Ipv4Cidr, Span};
use super::super::yaml::{Node, NodeValue};
use super::fields::Ctx;

use crate::chain::names::{self, NameKind};
pub use crate::chain::names::{MAX_CHAIN_NAME, MAX_IFNAME, MAX_NODE_NAME};
/// Smallest `memory:` limit.
pub const MIN_MEMORY: u64 = 4 << 20;
/// Smallest `wasm_memory:` (one wasm page).
pub const MIN_WASM_MEMORY: u64 = 64 << 10;
/// Largest `wasm_memory:` (the wasm32 address space).
pub const MAX_WASM_MEMORY: u64 = 4 << 30;
/// Largest `cpu:`.
pub const MAX_CPU: f64 = 1024.0;

impl Ctx<'_> {
    pub(super) fn mtu(&mut self, node: &Node, what: &str) -> Option<u32> {
        let v = self.int(node, what)?;
        if !(68..=65535).contains(&v) {
            self.err(
                node.span,
                format!("{what} {v} is out of range; an MTU must be between 68 and 65535"),
            );
            return None;
        }
        u32::try_from(v).ok()
    }

    pub(super) fn cidr(&mut self, node: &Node, what: &str) -> Option<Ipv4Cidr> {
        let text = self.str(node, what)?;
        match text.parse::<Ipv4Cidr>() {
            Ok(c) => Some(c),
            Err(e) => {
                self.err(node.span, format!("bad {what}: {e}"));
                None
            }
        }
    }

    pub(super) fn ipv4(&mut self, node: &Node, what: &str) -> Option<Ipv4Addr> {
        let text = self.str(node, what)?;
        match text.parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                let hint = if text.contains('/') {
                    "write a plain address without a prefix length, e.g. 10.0.1.1"
                } else {
                    "write an IPv4 address, e.g. 10.0.1.1"
                };
                self.hint(
                    node.span,
                    format!("bad {what}: `{text}` is not an IPv4 address"),
                    hint,
                );
                None
            }
        }
    }
}

/// Reports `name` at `span` unless it follows the rule for `kind` (see
/// [`names`]).
pub(super) fn check_name(cx: &mut Ctx, span: Span, kind: NameKind, name: &str, what: &str) {
    if let Err(why) = names::check(kind, name) {
        cx.hint(
            span,
            format!("{what} `{}` {why}", name.escape_default()),
            kind.rule(),
        );
    }
}

/// Parses a size: a plain number of bytes or a number with a unit.
/// `K`, `Ki`, `KiB` (and `M`/`G`/`T` likewise) are powers of 1024;
/// `kB`, `MB`, `GB`, `TB` are powers of 1000; `B` or no unit is bytes.
/// Units are case-insensitive, a space before the unit is allowed, and the
/// number may have a fraction (`1.5GiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim_start();
    if num.is_empty() {
        return Err(format!("`{text}` does not start with a number"));
    }
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`; use B, KiB, MiB, GiB or TiB (or K, M, G, T)"
            ))
        }
    };
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("`{text}` is too large"));
    }
    match num.parse::<f64>() {
        Ok(f) if f.is_finite() => {
            let v = f * mult as f64;
            if v >= u64::MAX as f64 {
                Err(format!("`{text}` is too large"))
            } else {
                Ok(v as u64)
            }
        }
        _ => Err(format!("`{num}` in `{text}` is not a number")),
    }
}

pub(super) fn human_size(bytes: u64) -> String {
    for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    format!("{bytes} bytes")
}

pub(super) fn size(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    min: u64,
    max: Option<u64>,
) -> Option<u64> {
    let bytes = match &node.value {
        NodeValue::Int(i) => match u64::try_from(*i) {
            Ok(b) => b,
            Err(_) => {
                cx.err(node.span, format!("{what} must not be negative"));
                return None;
            }
        },
        NodeValue::Str(s) => match parse_size(s) {
            Ok(b) => b,
            Err(e) => {
                cx.hint(
                    node.span,
                    format!("bad {what}: {e}"),
                    "write bytes or a size with a unit, e.g. 64MiB, 512KiB or 1GiB",
                );
                return None;
            }
        },
        _ => {
            cx.type_err(node, "a size like 64MiB", what);
            return None;
        }
    };
    if bytes < min {
        cx.hint(
            node.span,
            format!(
                "{what} {} is below the minimum of {}",
                human_size(bytes),
                human_size(min)
            ),
            format!("give at least {}", human_size(min)),
        );
        return None;
    }
    if let Some(max) = max {
        if bytes > max {
            cx.err(
                node.span,
                format!(
                    "{what} {} is above the maximum of {}",
                    human_size(bytes),
                    human_size(max)
                ),
            );
            return None;
        }
    }
    Some(bytes)
}

/// The YAML of `config:` as JSON.
pub(super) fn to_json(cx: &mut Ctx, node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        NodeValue::Null => J::Null,
        NodeValue::Bool(b) => J::Bool(*b),
        NodeValue::Int(i) => J::from(*i),
        NodeValue::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => J::Number(n),
            None => {
                cx.hint(
                    node.span,
                    "`.inf` and `.nan` cannot be passed in config",
                    "quote it to pass a string",
                );
                J::Null
            }
        },
        NodeValue::Str(s) => J::String(s.clone()),
        NodeValue::Seq(items) => J::Array(items.iter().map(|n| to_json(cx, n)).collect()),
        NodeValue::Map(entries) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in entries {
                match &k.value {
                    NodeValue::Str(s) => {
                        let v = to_json(cx, v);
                        obj.insert(s.clone(), v);
                    }
                    _ => {
                        let hint = match k.scalar_text() {
                            Some(t) => format!("quote it: \"{t}\""),
                            None => "use a string key".to_owned(),
                        };
                        cx.hint(
                            k.span,
                            format!("config keys must be strings, found {}", k.kind()),
                            hint,
                        );
                    }
                }
            }
            J::Object(obj)
        }
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`, refusing multicast and all-zero addresses.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!(
            "`{text}` is not a MAC address (six hex bytes separated by `:`)"
        ));
    }
    for (byte, part) in mac.iter_mut().zip(&parts) {
        *byte = u8::from_str_radix(part, 16)
            .ok()
            .filter(|_| part.len() == 2)
            .ok_or_else(|| {
                format!("`{text}` is not a MAC address (six hex bytes separated by `:`)")
            })?;
    }
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(format!("`{text}` is a multicast or zero address"));
    }
    Ok(mac)
}
