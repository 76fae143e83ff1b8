//! The one description of every mapping in a chain file: its keys, which
//! are required, what type each value has and what it means.
//!
//! The decoder refuses keys that are not listed here (see
//! [`Ctx::fields`](super::fields::Ctx::fields)), and [`schema`] turns the
//! same table into the JSON Schema checked in at `docs/chain.schema.json`
//! (`nfvhost schema` prints it). To add a key: add a [`Key`] to its
//! section below, decode it in `nodes.rs` (or `mod.rs` for the top
//! level), and regenerate the schema.

use serde_json::{json, Map, Value};

use super::values::{MAX_CHAIN_NAME, MAX_CPU, MAX_IFNAME, MAX_NODE_NAME};

/// One mapping of the chain file (the top level, a host, a VNF, ...).
pub struct Section {
    /// Its name in the schema's `$defs`.
    pub name: &'static str,
    pub doc: &'static str,
    pub keys: &'static [Key],
    /// Exactly one of these keys must be given (none when empty).
    pub one_of: &'static [&'static str],
}

/// One key of a section.
pub struct Key {
    pub name: &'static str,
    pub required: bool,
    pub ty: Ty,
    pub doc: &'static str,
}

/// What a key's value may be, as far as the schema can say; the decoder
/// checks the rest (ranges of sizes, subnets, wiring) with better messages.
pub enum Ty {
    /// A host, VNF or chain name (a string or a number), at most this long.
    NodeName(usize),
    /// A Linux interface or port name.
    IfName,
    Bool,
    /// An integer in `min..=max`.
    Int(i64, i64),
    /// A number above 0 and at most this.
    Cores(f64),
    /// Bytes, or a number with a unit (`64MiB`).
    Size,
    /// `a.b.c.d/len`.
    Cidr,
    /// `a.b.c.d`.
    Ipv4,
    /// `address:port`.
    SocketAddr,
    /// `aa:bb:cc:dd:ee:ff`.
    Mac,
    /// `node:port`.
    Endpoint,
    /// A shipped VNF name or a path ending in `.wasm`.
    Module,
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// Any mapping (or nothing), passed on to the module.
    AnyMap,
    /// A nested section (`null` allowed when the flag is set).
    Section(&'static Section, bool),
    /// A list of values, with at least this many entries.
    List(&'static Ty, usize),
    /// A mapping from names (first) to values (second); `null` counts as
    /// empty.
    MapOf(&'static Ty, &'static Ty),
    /// Either of these forms.
    Either(&'static Ty, &'static Ty),
    /// Exactly two of these in a list.
    Pair(&'static Ty),
}

const MTU: Ty = Ty::Int(68, 65535);
const NODE: Ty = Ty::NodeName(MAX_NODE_NAME);
/// The names of [`crate::chain::PollMode`]'s modes.
const POLL_MODE: Ty = Ty::Enum(&["sleep", "adaptive", "busy"]);
/// The names of [`crate::chain::PortIo`]'s kinds.
/// The names of [`crate::chain::TapIo`]'s kinds.
const TAP_IO: Ty = Ty::Enum(&["read_write", "io_uring"]);
const PORT_IO: Ty = Ty::Enum(&["mmsg", "tpacket", "tpacket_v2", "xdp"]);
const LOG_LEVEL: Ty = Ty::Enum(&["error", "warn", "info", "debug", "trace"]);

pub static TOP: Section = Section {
    name: "chain",
    doc: "An nfvhost chain file: test hosts and VNFs wired by links.",
    keys: &[
        Key {
            name: "name",
            required: true,
            ty: Ty::NodeName(MAX_CHAIN_NAME),
            doc: "The chain's name; it prefixes namespace names.",
        },
        Key {
            name: "metrics",
            required: false,
            ty: Ty::SocketAddr,
            doc: "address:port to serve /metrics on, e.g. 127.0.0.1:9464.",
        },
        Key {
            name: "defaults",
            required: false,
            ty: Ty::Section(&DEFAULTS, true),
            doc: "`resources`, `datapath` and `log_level` for every VNF that does not set them.",
        },
        Key {
            name: "hosts",
            required: false,
            ty: Ty::MapOf(&NODE, &Ty::Section(&HOST, false)),
            doc: "Test hosts: namespaces with a kernel stack, by name.",
        },
        Key {
            name: "vnfs",
            required: false,
            ty: Ty::MapOf(&NODE, &Ty::Section(&VNF, false)),
            doc: "Network functions, by name.",
        },
        Key {
            name: "groups",
            required: false,
            ty: Ty::MapOf(&NODE, &Ty::Section(&GROUP, true)),
            doc: "Fused groups, by name: VNFs one worker runs, linked in memory.",
        },
        Key {
            name: "links",
            required: false,
            ty: Ty::List(
                &Ty::Either(&Ty::Pair(&Ty::Endpoint), &Ty::Section(&LINK, false)),
                0,
            ),
            doc: "Links between ports: `[node:port, node:port]` or a mapping.",
        },
        Key {
            name: "chain",
            required: false,
            ty: Ty::List(&NODE, 2),
            doc:
                "A straight line from a test host through VNFs to a test host, instead of `links:`.",
        },
    ],
    one_of: &["links", "chain"],
};

pub static HOST: Section = Section {
    name: "host",
    doc: "A test host.",
    keys: &[
        Key {
            name: "interfaces",
            required: true,
            ty: Ty::MapOf(&Ty::IfName, &Ty::Section(&IFACE, true)),
            doc: "Its interfaces by name; at least one.",
        },
        Key {
            name: "gateway",
            required: false,
            ty: Ty::Ipv4,
            doc: "Default route; inside an interface subnet.",
        },
        Key {
            name: "routes",
            required: false,
            ty: Ty::List(&Ty::Section(&ROUTE, false), 0),
            doc: "Static routes; `via` inside an interface subnet.",
        },
    ],
    one_of: &[],
};

pub static IFACE: Section = Section {
    name: "interface",
    doc: "An interface of a test host.",
    keys: &[
        Key {
            name: "address",
            required: false,
            ty: Ty::Cidr,
            doc: "One static address with prefix length.",
        },
        Key {
            name: "addresses",
            required: false,
            ty: Ty::List(&Ty::Cidr, 0),
            doc: "Several static addresses.",
        },
        Key {
            name: "dhcp",
            required: false,
            ty: Ty::Bool,
            doc: "Run a DHCP client (no static address).",
        },
        Key {
            name: "mtu",
            required: false,
            ty: MTU,
            doc: "MTU, 68 to 65535.",
        },
        Key {
            name: "mac",
            required: false,
            ty: Ty::Mac,
            doc: "Fixed unicast MAC (for DHCP reservations).",
        },
    ],
    one_of: &[],
};

pub static ROUTE: Section = Section {
    name: "route",
    doc: "A static route of a test host.",
    keys: &[
        Key {
            name: "to",
            required: true,
            ty: Ty::Cidr,
            doc: "Destination network.",
        },
        Key {
            name: "via",
            required: true,
            ty: Ty::Ipv4,
            doc: "Next hop.",
        },
    ],
    one_of: &[],
};

pub static VNF: Section = Section {
    name: "vnf",
    doc: "A network function: a WebAssembly module run by its own worker.",
    keys: &[
        Key { name: "module", required: true, ty: Ty::Module, doc: "A shipped VNF name or a path ending in .wasm, relative to the chain file's directory." },
        Key { name: "ports", required: true, ty: Ty::List(&Ty::IfName, 1), doc: "Port names; the index is the port number the module sees." },
        Key { name: "resources", required: false, ty: Ty::Section(&RESOURCES, true), doc: "Limits of the VNF's cgroup and linear memory." },
        Key { name: "datapath", required: false, ty: Ty::Section(&DATAPATH, true), doc: "How the worker moves frames." },
        Key { name: "group", required: false, ty: NODE, doc: "A group of `groups:` whose worker runs this VNF." },
        Key { name: "log_level", required: false, ty: LOG_LEVEL, doc: "The most verbose module log lines kept: error, warn, info (default), debug or trace." },
        Key { name: "config", required: false, ty: Ty::AnyMap, doc: "Passed to the module as JSON." },
    ],
    one_of: &[],
};

pub static DEFAULTS: Section = Section {
    name: "defaults",
    doc: "Settings every VNF gets unless it sets them itself, key by key.",
    keys: &[
        Key {
            name: "resources",
            required: false,
            ty: Ty::Section(&RESOURCES, true),
            doc: "Default limits of each VNF's cgroup and linear memory.",
        },
        Key {
            name: "datapath",
            required: false,
            ty: Ty::Section(&DATAPATH, true),
            doc: "Default data path settings of each VNF.",
        },
        Key {
            name: "log_level",
            required: false,
            ty: LOG_LEVEL,
            doc: "Default module log level of each VNF.",
        },
    ],
    one_of: &[],
};

pub static DATAPATH: Section = Section {
    name: "datapath",
    doc: "How the worker moves frames.",
    keys: &[
        Key {
            name: "batch",
            required: false,
            ty: Ty::Int(1, 256),
            doc: "Frames per call into the module.",
        },
        Key {
            name: "poll",
            required: false,
            ty: POLL_MODE,
            doc: "How the worker waits: sleep (default), adaptive (spin 200 µs after traffic, then sleep) or busy (a core at 100 %).",
        },
        Key {
            name: "busy_poll",
            required: false,
            ty: Ty::Bool,
            doc: "The older spelling of `poll: busy` (true) or `poll: sleep` (false).",
        },
        Key {
            name: "offload",
            required: false,
            ty: Ty::Bool,
            doc: "Carry checksum/segmentation offload (64 KB TCP super-frames).",
        },
        Key {
            name: "io",
            required: false,
            ty: PORT_IO,
            doc: "How ports on veth ends move frames: tpacket_v2 (a mapped TPACKET_V2 receive ring, the default), mmsg (recvmmsg/sendmmsg), tpacket (a mapped TPACKET_V3 receive ring, 1 ms block timer) or xdp (AF_XDP; implies offload: false, MTU at most 3506).",
        },
        Key {
            name: "tap_io",
            required: false,
            ty: TAP_IO,
            doc: "How TAP ports move frames: read_write (a system call per frame, the default) or io_uring (a batch per call on a locked-down ring).",
        },
        Key {
            name: "cpus",
            required: false,
            ty: Ty::List(&Ty::Int(0, 1023), 0),
            doc: "Pin the worker to these CPUs.",
        },
    ],
    one_of: &[],
};

pub static RESOURCES: Section = Section {
    name: "resources",
    doc: "Limits of a VNF.",
    keys: &[
        Key {
            name: "cpu",
            required: false,
            ty: Ty::Cores(MAX_CPU),
            doc: "Cores, above 0 and at most 1024.",
        },
        Key {
            name: "memory",
            required: false,
            ty: Ty::Size,
            doc: "Cgroup memory limit; at least 4MiB.",
        },
        Key {
            name: "pids",
            required: false,
            ty: Ty::Int(1, i64::MAX),
            doc: "Cgroup pids limit; at least 1.",
        },
        Key {
            name: "wasm_memory",
            required: false,
            ty: Ty::Size,
            doc: "Cap on the module's linear memory; 64KiB to 4GiB.",
        },
    ],
    one_of: &[],
};

pub static LINK: Section = Section {
    name: "link",
    doc: "A link in its long form.",
    keys: &[
        Key {
            name: "a",
            required: true,
            ty: Ty::Endpoint,
            doc: "One end, `node:port`.",
        },
        Key {
            name: "b",
            required: true,
            ty: Ty::Either(&Ty::Endpoint, &Ty::Section(&VXLAN, false)),
            doc: "The other end, `node:port`; for `kind: vxlan` the far end on another machine.",
        },
        Key {
            name: "kind",
            required: false,
            ty: Ty::Enum(&["veth", "tap", "vxlan"]),
            doc: "`veth` (default), `tap` (joins a VNF port to a host interface) or `vxlan` (to another machine).",
        },
        Key {
            name: "mtu",
            required: false,
            ty: MTU,
            doc: "MTU, 68 to 65535.",
        },
        Key {
            name: "impair",
            required: false,
            ty: Ty::AnyMap,
            doc: "Puts the `impair` VNF (delay, jitter, loss, rate, ...) on this veth link, named `impair-N` for the N-th link; its settings are checked by the module.",
        },
    ],
    one_of: &[],
};

pub static VXLAN: Section = Section {
    name: "vxlan",
    doc: "The far end of a `kind: vxlan` link: a port on another machine with the same VNI.",
    keys: &[
        Key {
            name: "remote",
            required: true,
            ty: Ty::Ipv4,
            doc: "The other machine's underlay address; it must be routable from the namespace nfvhost runs in.",
        },
        Key {
            name: "vni",
            required: true,
            ty: Ty::Int(1, 16_777_215),
            doc: "VXLAN network identifier, 1 to 16777215; both ends name the same.",
        },
        Key {
            name: "port",
            required: false,
            ty: Ty::Int(1, 65535),
            doc: "UDP destination port; 4789 by default.",
        },
        Key {
            name: "local",
            required: false,
            ty: Ty::Ipv4,
            doc: "This machine's underlay source address; the route to `remote` picks one by default.",
        },
    ],
    one_of: &[],
};

pub static GROUP: Section = Section {
    name: "group",
    doc: "A fused group: one worker, one namespace and one cgroup for its member VNFs.",
    keys: &[
        Key {
            name: "resources",
            required: false,
            ty: Ty::Section(&GROUP_RESOURCES, true),
            doc: "The group's cgroup limits; a limit not given is the sum of its members'.",
        },
        Key {
            name: "datapath",
            required: false,
            ty: Ty::Section(&GROUP_DATAPATH, true),
            doc: "How the group's worker waits for frames.",
        },
    ],
    one_of: &[],
};

pub static GROUP_RESOURCES: Section = Section {
    name: "group_resources",
    doc: "Limits of a group's cgroup (`wasm_memory` stays per VNF).",
    keys: &[
        Key {
            name: "cpu",
            required: false,
            ty: Ty::Cores(MAX_CPU),
            doc: "Cores for the whole group; default: the sum of its members'.",
        },
        Key {
            name: "memory",
            required: false,
            ty: Ty::Size,
            doc: "Cgroup memory limit for the whole group; default: the sum of its members'.",
        },
        Key {
            name: "pids",
            required: false,
            ty: Ty::Int(1, i64::MAX),
            doc: "Cgroup pids limit for the whole group; default: the sum of its members'.",
        },
    ],
    one_of: &[],
};

pub static GROUP_DATAPATH: Section = Section {
    name: "group_datapath",
    doc: "How a group's worker waits (`batch` and `offload` stay per VNF).",
    keys: &[
        Key {
            name: "poll",
            required: false,
            ty: POLL_MODE,
            doc: "How the group's one worker waits: sleep (default), adaptive or busy (one core at 100 % for the whole group).",
        },
        Key {
            name: "busy_poll",
            required: false,
            ty: Ty::Bool,
            doc: "The older spelling of `poll: busy` (true) or `poll: sleep` (false).",
        },
        Key {
            name: "cpus",
            required: false,
            ty: Ty::List(&Ty::Int(0, 1023), 0),
            doc: "Pin the group's worker to these CPUs.",
        },
    ],
    one_of: &[],
};

/// Every section, in the order the schema lists them.
const SECTIONS: [&Section; 13] = [
    &TOP,
    &HOST,
    &IFACE,
    &ROUTE,
    &VNF,
    &DEFAULTS,
    &RESOURCES,
    &DATAPATH,
    &GROUP,
    &GROUP_RESOURCES,
    &GROUP_DATAPATH,
    &LINK,
    &VXLAN,
];

impl Section {
    /// The names of its keys, in table order.
    pub fn allowed(&self) -> impl Iterator<Item = &'static str> + Clone {
        self.keys.iter().map(|k| k.name)
    }

    /// The names of its required keys.
    pub fn required(&self) -> impl Iterator<Item = &'static str> {
        self.keys.iter().filter(|k| k.required).map(|k| k.name)
    }

    fn schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .keys
            .iter()
            .map(|k| {
                let mut s = k.ty.schema();
                s["description"] = k.doc.into();
                (k.name.to_owned(), s)
            })
            .collect();
        let mut s = json!({
            "description": self.doc,
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        });
        let required: Vec<&str> = self.required().collect();
        if !required.is_empty() {
            s["required"] = json!(required);
        }
        if !self.one_of.is_empty() {
            s["oneOf"] = self
                .one_of
                .iter()
                .map(|k| json!({ "required": [k] }))
                .collect();
        }
        s
    }
}

const NODE_NAME: &str = "^[a-z0-9][a-z0-9-]*$";
const IF_NAME: &str = "^[^/:\\s]+$";
const IPV4: &str = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}";

impl Ty {
    fn schema(&self) -> Value {
        match self {
            Ty::NodeName(max) => json!({
                "type": ["string", "integer"],
                "pattern": NODE_NAME,
                "maxLength": max,
                "minimum": 0,
            }),
            Ty::IfName => json!({
                "type": ["string", "integer"],
                "pattern": IF_NAME,
                "minLength": 1,
                "maxLength": MAX_IFNAME,
                "not": { "enum": [".", ".."] },
            }),
            Ty::Bool => json!({ "type": "boolean" }),
            Ty::Int(min, max) if *max == i64::MAX => json!({ "type": "integer", "minimum": min }),
            Ty::Int(min, max) => json!({ "type": "integer", "minimum": min, "maximum": max }),
            Ty::Cores(max) => json!({ "type": "number", "exclusiveMinimum": 0, "maximum": max }),
            Ty::Size => json!({
                "type": ["integer", "string"],
                "minimum": 0,
                "pattern": "^\\s*[0-9.]+\\s*([bB]|[kKmMgGtT]([iI][bB]?|[bB])?)?\\s*$",
            }),
            Ty::Cidr => json!({
                "type": "string",
                "pattern": format!("^{IPV4}/([0-9]|[12][0-9]|3[0-2])$"),
            }),
            Ty::Ipv4 => json!({ "type": "string", "pattern": format!("^{IPV4}$") }),
            Ty::SocketAddr => {
                json!({ "type": "string", "pattern": "^(\\[[0-9a-fA-F:.]+\\]|[0-9.]+):[0-9]{1,5}$" })
            }
            Ty::Mac => json!({
                "type": "string",
                "pattern": "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$",
            }),
            Ty::Endpoint => json!({
                "type": "string",
                "pattern": "^[a-z0-9][a-z0-9-]*:[^/:\\s]+$",
            }),
            Ty::Module => json!({
                "type": "string",
                "pattern": "(^[a-z0-9_-]+$)|(\\.wasm$)",
            }),
            Ty::Enum(values) => json!({ "type": "string", "enum": values }),
            Ty::AnyMap => json!({ "type": ["object", "null"] }),
            Ty::Section(s, null_ok) => {
                let r = json!({ "$ref": format!("#/$defs/{}", s.name) });
                if *null_ok {
                    json!({ "oneOf": [{ "type": "null" }, r] })
                } else {
                    r
                }
            }
            Ty::List(item, min) => {
                let mut s = json!({ "type": "array", "items": item.schema() });
                if *min > 0 {
                    s["minItems"] = json!(min);
                }
                s
            }
            Ty::MapOf(key, value) => {
                let mut names = key.schema();
                // Property names are strings in JSON: drop the integer form.
                names["type"] = json!("string");
                json!({
                    "type": ["object", "null"],
                    "propertyNames": names,
                    "additionalProperties": value.schema(),
                })
            }
            Ty::Either(a, b) => json!({ "oneOf": [a.schema(), b.schema()] }),
            Ty::Pair(item) => json!({
                "type": "array",
                "items": item.schema(),
                "minItems": 2,
                "maxItems": 2,
            }),
        }
    }
}

/// The JSON Schema (draft 2020-12) of a chain file.
pub fn schema() -> Value {
    let defs: Map<String, Value> = SECTIONS
        .iter()
        .map(|s| (s.name.to_owned(), s.schema()))
        .collect();
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "nfvhost chain file",
    });
    root["$ref"] = json!(format!("#/$defs/{}", TOP.name));
    root["$defs"] = Value::Object(defs);
    root
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use super::super::super::yaml::{self, Node, NodeValue};
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The YAML tree as JSON, every key as a string (as a schema sees it).
    fn json_of(node: &Node) -> Value {
        match &node.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => json!(b),
            NodeValue::Int(i) => json!(i),
            NodeValue::Float(f) => json!(f),
            NodeValue::Str(s) => json!(s),
            NodeValue::Seq(items) => items.iter().map(json_of).collect(),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), json_of(v)))
                    .collect(),
            ),
        }
    }

    fn validator() -> jsonschema::Validator {
        jsonschema::draft202012::new(&schema()).expect("the generated schema is a valid schema")
    }

    fn check(text: &str) -> Result<(), String> {
        let (root, errors) = yaml::load(text);
        assert!(errors.is_empty(), "{text}");
        let doc = json_of(&root.expect("a document"));
        let v = validator();
        let problems: Vec<String> = v
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    #[test]
    fn checked_in_schema_is_the_generated_one() {
        let path = repo().join("docs/chain.schema.json");
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in.trim_end() == crate::chain::schema_text(),
            "{} differs from the key table: run `nfvhost schema > docs/chain.schema.json`",
            path.display()
        );
    }

    #[test]
    fn every_shipped_chain_validates_against_the_schema() {
        let mut checked = 0;
        for dir in [
            "chains",
            "tests/chains",
            "tests/modtest/router",
            "tests/modtest/firewall",
            "tests/modtest/nat",
            "tests/modtest/dhcp",
        ] {
            for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if let Err(e) = check(&text) {
                        panic!("{}: {e}", path.display());
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 4, "only {checked} chain files found");
    }

    #[test]
    fn every_shipped_chain_names_the_schema_for_editors() {
        let schema = std::fs::canonicalize(repo().join("docs/chain.schema.json")).unwrap();
        for dir in ["chains", "tests/chains"] {
            for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "yaml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let first = text.lines().next().unwrap_or_default();
                let rel = first
                    .strip_prefix("# yaml-language-server: $schema=")
                    .unwrap_or_else(|| panic!("{}: first line is {first:?}", path.display()));
                let resolved = path.parent().unwrap().join(rel);
                assert_eq!(
                    std::fs::canonicalize(&resolved).ok().as_ref(),
                    Some(&schema),
                    "{}: {rel} does not resolve to docs/chain.schema.json",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn schema_refuses_what_the_decoder_refuses() {
        let base = "name: t\nhosts:\n  h1: { interfaces: { eth0: { address: 10.0.1.10/24 } } }\n";
        assert!(check(&format!("{base}chain: [h1, h1]\n")).is_ok());
        assert!(check(&format!(
            "{base}links: [{{ a: h1:eth0, b: {{ remote: 10.0.0.2, vni: 5 }}, kind: vxlan }}]\n"
        ))
        .is_ok());
        for bad in [
            format!("{base}chain: [h1, h1]\nextra: 1\n"),
            format!("{base}links: []\nchain: [h1, h1]\n"),
            format!("{base}links: [{{ a: h1:eth0, b: h1:eth0, kind: wire }}]\n"),
            format!("{base}links: [{{ a: h1:eth0, b: {{ remote: 10.0.0.2, vni: 0 }}, kind: vxlan }}]\n"),
            format!("{base}links: [{{ a: h1:eth0, b: {{ remote: 10.0.0.2, vni: 16777216 }}, kind: vxlan }}]\n"),
            format!("{base}links: [{{ a: h1:eth0, b: {{ remote: 10.0.0.2, vni: 5, port: 70000 }}, kind: vxlan }}]\n"),
            format!("{base}links: [{{ a: h1:eth0, b: {{ remote: nope, vni: 5 }}, kind: vxlan }}]\n"),
            format!("{base}links: [{{ a: h1:eth0, b: {{ vni: 5 }}, kind: vxlan }}]\n"),
            format!("{base}links: [[h1:eth0]]\n"),
            "name: Bad_Name\nlinks: []\n".to_owned(),
            "name: t\nvnfs: { r1: { module: router, ports: [a], resources: { cpu: 0 } } }\nlinks: []\n".to_owned(),
            "name: t\nvnfs: { r1: { module: router, ports: [a], datapath: { batch: 300 } } }\nlinks: []\n".to_owned(),
            "name: t\nvnfs: { r1: { module: router } }\nlinks: []\n".to_owned(),
            "name: t\ndefaults: { resources: { cpu: 0 } }\nlinks: []\n".to_owned(),
            "name: t\ndefaults: { log_level: loud }\nlinks: []\n".to_owned(),
            "name: t\ndefaults: { config: {} }\nlinks: []\n".to_owned(),
            "name: t\nhosts: { h1: { interfaces: { eth0: { mac: nope } } } }\nlinks: []\n".to_owned(),
        ] {
            assert!(check(&bad).is_err(), "accepted:\n{bad}");
        }
    }

    #[test]
    fn log_levels_are_the_abis() {
        let Ty::Enum(labels) = LOG_LEVEL else {
            panic!("LOG_LEVEL is an enum")
        };
        let abi: Vec<&str> = nfvhost_abi::LogLevel::ALL
            .iter()
            .map(|l| l.label())
            .collect();
        assert_eq!(labels.to_vec(), abi);
    }

    #[test]
    fn every_section_key_is_documented_and_unique() {
        for s in SECTIONS {
            for (i, k) in s.keys.iter().enumerate() {
                assert!(!k.doc.is_empty(), "{}.{}", s.name, k.name);
                assert!(
                    s.keys[..i].iter().all(|o| o.name != k.name),
                    "{}.{}",
                    s.name,
                    k.name
                );
            }
            for k in s.one_of {
                assert!(s.allowed().any(|a| a == *k), "{}.{k}", s.name);
            }
        }
    }
}
