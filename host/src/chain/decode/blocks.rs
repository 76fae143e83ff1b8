//! The blocks a VNF and the chain's `defaults:` share: `resources:`,
//! `datapath:` and `log_level:`. Each parser fills in only the keys the
//! block gives, on top of what it is handed, so a VNF starts from the
//! chain's defaults and overrides key by key.

use nfvhost_abi::LogLevel;

use super::super::spec::{Datapath, PollMode, PortIo, Resources, TapIo};
use super::super::yaml::{Node, NodeValue};
use super::fields::Ctx;
use super::keys;
use super::values::{size, MAX_CPU, MAX_WASM_MEMORY, MIN_MEMORY, MIN_WASM_MEMORY};

/// What a VNF gets unless it says otherwise (`defaults:`).
#[derive(Debug, Clone, Default)]
pub(super) struct Defaults {
    pub(super) resources: Resources,
    pub(super) datapath: Datapath,
    pub(super) log_level: Option<LogLevel>,
}

/// The log level of a VNF that sets none, in its block or in `defaults:`.
pub const DEFAULT_LOG_LEVEL: LogLevel = LogLevel::Info;

/// The top-level `defaults:` section.
pub(super) fn defaults(cx: &mut Ctx, node: &Node) -> Defaults {
    let mut d = Defaults::default();
    let what = "`defaults`";
    let Some(entries) = cx.map(node, what, true) else {
        return d;
    };
    let f = cx.fields(entries, what, node.span, &keys::DEFAULTS);
    if let Some(r) = f.get("resources") {
        resources(cx, r, "`resources` of `defaults`", &mut d.resources);
    }
    if let Some(n) = f.get("datapath") {
        datapath(cx, n, "`datapath` of `defaults`", &mut d.datapath);
    }
    if let Some(n) = f.get("log_level") {
        d.log_level = log_level(cx, n);
    }
    d
}

/// A value naming one of `all` by its `label`: `what` and `hint` say, in
/// the error, what the value names and how to choose.
fn one_of<T: Copy>(
    cx: &mut Ctx,
    node: &Node,
    key: &str,
    what: &str,
    all: &[T],
    label: impl Fn(T) -> &'static str,
    hint: &str,
) -> Option<T> {
    let text = cx.str(node, &format!("`{key}`"))?;
    let found = all.iter().copied().find(|v| label(*v) == text);
    if found.is_none() {
        let names: Vec<&str> = all.iter().map(|v| label(*v)).collect();
        cx.hint(
            node.span,
            format!("{what} `{text}` is not one of {}", names.join(", ")),
            hint,
        );
    }
    found
}

/// A `log_level:` value.
pub(super) fn log_level(cx: &mut Ctx, node: &Node) -> Option<LogLevel> {
    one_of(
        cx,
        node,
        "log_level",
        "log level",
        LogLevel::ALL,
        LogLevel::label,
        "`info` keeps errors, warnings and information; `debug` and `trace` add detail",
    )
}

/// A `datapath: { poll: ... }` value.
fn poll_mode(cx: &mut Ctx, node: &Node) -> Option<PollMode> {
    one_of(cx, node, "poll", "poll mode", PollMode::ALL, PollMode::label,
        "`sleep` costs no CPU while idle; `adaptive` spins briefly after traffic; `busy` takes a core")
}

/// A `datapath: { io: ... }` value.
fn port_io(cx: &mut Ctx, node: &Node) -> Option<PortIo> {
    one_of(
        cx,
        node,
        "io",
        "io",
        PortIo::ALL,
        PortIo::label,
        "`tpacket_v2` (the default) suits every workload; `xdp` is AF_XDP (no offload); see the README",
    )
}

/// A `datapath: { tap_io: ... }` value.
fn tap_io(cx: &mut Ctx, node: &Node) -> Option<TapIo> {
    one_of(cx, node, "tap_io", "tap_io", TapIo::ALL, TapIo::label,
        "`read_write` (the default) was faster where measured; `io_uring` batches (benches/tap_io.py)")
}

/// A `resources:` block, over `out`.
pub(super) fn resources(cx: &mut Ctx, r: &Node, what: &str, out: &mut Resources) {
    resources_in(cx, r, what, &keys::RESOURCES, out);
}

/// A `resources:` block with the keys `section` allows (a VNF's, or a
/// fused group's, which has no `wasm_memory`), over `out`.
pub(super) fn resources_in(
    cx: &mut Ctx,
    r: &Node,
    what: &str,
    section: &keys::Section,
    out: &mut Resources,
) {
    let Some(entries) = cx.map(r, what, true) else {
        return;
    };
    let rf = cx.fields(entries, "`resources`", r.span, section);
    if let Some(n) = rf.get("cpu") {
        let v = match n.value {
            NodeValue::Int(i) => Some(i as f64),
            NodeValue::Float(x) => Some(x),
            _ => {
                cx.type_err(n, "a number of cores", "`cpu`");
                None
            }
        };
        if let Some(v) = v {
            if v > 0.0 && v <= MAX_CPU {
                out.cpu = Some(v);
            } else {
                cx.hint(
                    n.span,
                    format!("cpu {v} is out of range"),
                    "give a number of cores above 0 and at most 1024, e.g. 0.5",
                );
            }
        }
    }
    if let Some(n) = rf.get("memory") {
        if let Some(v) = size(cx, n, "memory", MIN_MEMORY, None) {
            out.memory = Some(v);
        }
    }
    if let Some(n) = rf.get("wasm_memory") {
        if let Some(v) = size(cx, n, "wasm_memory", MIN_WASM_MEMORY, Some(MAX_WASM_MEMORY)) {
            out.wasm_memory = Some(v);
        }
    }
    if let Some(n) = rf.get("pids") {
        if let Some(v) = cx.int(n, "`pids`") {
            if v >= 1 {
                out.pids = Some(v as u64);
            } else {
                cx.hint(
                    n.span,
                    format!("pids {v} is out of range"),
                    "give at least 1",
                );
            }
        }
    }
}

/// A `datapath:` block, over `out`.
pub(super) fn datapath(cx: &mut Ctx, d: &Node, what: &str, out: &mut Datapath) {
    datapath_in(cx, d, what, &keys::DATAPATH, out);
}

/// A `datapath:` block with the keys `section` allows (a VNF's, or a fused
/// group's: `poll`, `busy_poll` and `cpus` only), over `out`.
pub(super) fn datapath_in(
    cx: &mut Ctx,
    d: &Node,
    what: &str,
    section: &keys::Section,
    out: &mut Datapath,
) {
    let Some(entries) = cx.map(d, what, true) else {
        return;
    };
    let df = cx.fields(entries, "`datapath`", d.span, section);
    if let Some(n) = df.get("batch") {
        if let Some(v) = cx.int(n, "`batch`") {
            if (1..=256).contains(&v) {
                out.batch = Some(v as usize);
            } else {
                cx.hint(
                    n.span,
                    format!("batch {v} is out of range"),
                    "give 1 to 256 frames per call",
                );
            }
        }
    }
    match (df.get("poll"), df.get("busy_poll")) {
        (Some(_), Some(b)) => cx.hint(
            b.span,
            "both `poll` and `busy_poll` are given",
            "keep `poll` (`busy_poll: true` is the older spelling of `poll: busy`)",
        ),
        (Some(n), None) => {
            if let Some(mode) = poll_mode(cx, n) {
                out.poll = mode;
            }
        }
        (None, Some(n)) => {
            if let Some(b) = cx.bool(n, "`busy_poll`") {
                out.poll = if b { PollMode::Busy } else { PollMode::Sleep };
            }
        }
        (None, None) => {}
    }
    let offload = df
        .get("offload")
        .and_then(|n| Some((n, cx.bool(n, "`offload`")?)));
    if let Some((_, b)) = offload {
        out.offload = b;
    }
    if let Some(t) = df.get("tap_io").and_then(|n| tap_io(cx, n)) {
        out.tap_io = t;
    }
    let io = df.get("io").and_then(|n| port_io(cx, n));
    if let Some(io) = io {
        out.io = io;
    }
    // AF_XDP without multi-buffer takes one page per frame, never a 64 KB
    // super-frame: `io: xdp` turns the default offload off (what someone
    // who asks for xdp expects), and an `offload: true` written next to it,
    // or under an `io: xdp` inherited from `defaults:`, is a contradiction.
    if out.io == PortIo::Xdp {
        match offload {
            Some((n, true)) => cx.hint(
                n.span,
                "`offload: true` with `io: xdp`: AF_XDP ports cannot carry 64 KB super-frames",
                "drop `offload:` (io: xdp implies offload: false) or use `io: mmsg`",
            ),
            _ if io.is_some() => out.offload = false,
            _ => {}
        }
    }
    if let Some(n) = df.get("cpus") {
        if let Some(items) = cx.seq(n, "`cpus`") {
            let mut cpus = Vec::new();
            for item in items {
                match cx.int(item, "a CPU number") {
                    Some(c) if (0..1024).contains(&c) => cpus.push(c as usize),
                    Some(c) => cx.hint(
                        item.span,
                        format!("CPU {c} is out of range"),
                        "CPUs are numbered from 0",
                    ),
                    None => {}
                }
            }
            out.cpus = cpus;
        }
    }
}

#[cfg(test)]
mod tests {
    use nfvhost_abi::LogLevel;

    use crate::chain::{parse, ChainError, PollMode, PortIo, TapIo};

    const WIRING: &str = "\
hosts:
  h1: { interfaces: { eth0: { address: 10.0.1.10/24 } } }
  h2: { interfaces: { eth0: { address: 10.0.2.10/24 } } }
chain: [h1, r1, r2, h2]
";

    fn chain(defaults: &str, r2: &str) -> String {
        format!(
            "name: t\n{defaults}vnfs:\n  r1: {{ module: router, ports: [a, b] }}\n  r2:\n    module: router\n    ports: [a, b]\n{r2}{WIRING}"
        )
    }

    fn errors(text: &str) -> Vec<ChainError> {
        parse("t.yaml", text).expect_err("refused").0
    }

    /// Line and column (1-based) of the first `needle` in `text`.
    fn at(text: &str, needle: &str) -> (usize, usize) {
        let i = text.find(needle).expect(needle);
        let line = text[..i].matches('\n').count() + 1;
        let col = i - text[..i].rfind('\n').map_or(0, |n| n + 1) + 1;
        (line, col)
    }

    #[track_caller]
    fn one_error_at(text: &str, needle: &str, phrase: &str) {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].line, e[0].col), at(text, needle), "{e:?}");
        let all = format!("{} {}", e[0].message, e[0].hint.as_deref().unwrap_or(""));
        assert!(all.contains(phrase), "{all}");
    }

    #[test]
    fn defaults_apply_key_by_key_unless_the_vnf_sets_them() {
        let text = chain(
            "defaults:\n  resources: { cpu: 1, memory: 64MiB, pids: 16 }\n  datapath: { batch: 32, busy_poll: true, offload: false }\n  log_level: warn\n",
            "    resources: { memory: 128MiB }\n    datapath: { busy_poll: false }\n    log_level: debug\n",
        );
        let spec = parse("t.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
        let (r1, r2) = (spec.vnf("r1").unwrap(), spec.vnf("r2").unwrap());
        assert_eq!(r1.resources.cpu, Some(1.0));
        assert_eq!(r1.resources.memory, Some(64 << 20));
        assert_eq!(r1.resources.pids, Some(16));
        assert_eq!(r1.datapath.batch, Some(32));
        assert!(r1.datapath.poll == PollMode::Busy && !r1.datapath.offload);
        assert_eq!(r1.log_level, LogLevel::Warn);
        // r2 overrides some keys and inherits the rest.
        assert_eq!(r2.resources.cpu, Some(1.0));
        assert_eq!(r2.resources.memory, Some(128 << 20));
        assert_eq!(r2.resources.pids, Some(16));
        assert_eq!(r2.datapath.batch, Some(32));
        assert!(r2.datapath.poll == PollMode::Sleep && !r2.datapath.offload);
        assert_eq!(r2.log_level, LogLevel::Debug);
    }

    #[test]
    fn without_defaults_nothing_is_limited_and_modules_log_at_info() {
        let spec = parse("t.yaml", &chain("", "")).unwrap_or_else(|e| panic!("{e}"));
        let r1 = spec.vnf("r1").unwrap();
        assert_eq!(r1.resources, Default::default());
        assert_eq!(r1.datapath, Default::default());
        assert_eq!(r1.log_level, LogLevel::Info);
        // An empty `defaults:` is allowed.
        assert!(parse("t.yaml", &chain("defaults:\n", "")).is_ok());
    }

    #[test]
    fn defaults_are_checked_like_a_vnfs_blocks() {
        let text = chain("defaults:\n  resources: { cpu: 0 }\n", "");
        one_error_at(&text, "0 }", "cpu 0 is out of range");
        let text = chain("defaults:\n  datapath: { batch: 300 }\n", "");
        one_error_at(&text, "300", "batch 300 is out of range");
        let text = chain("defaults:\n  resources: { memory: 1KiB }\n", "");
        one_error_at(&text, "1KiB", "memory");
        let text = chain("defaults:\n  resource: { cpu: 1 }\n", "");
        one_error_at(&text, "resource:", "did you mean `resources`?");
        let text = chain("defaults:\n  config: {}\n", "");
        one_error_at(&text, "config", "unknown key `config` in `defaults`");
        let text = chain("defaults: 5\n", "");
        one_error_at(&text, "5", "expected a mapping for `defaults`");
        let text = chain("defaults:\n  log_level: loud\n", "");
        one_error_at(
            &text,
            "loud",
            "log level `loud` is not one of error, warn, info, debug, trace",
        );
        let text = chain("", "    log_level: 3\n");
        one_error_at(&text, "3\n", "expected a string for `log_level`");
    }

    #[test]
    fn io_names_a_port_kind_and_defaults_to_tpacket_v2() {
        let spec = parse("t.yaml", &chain("", "    datapath: { io: mmsg }\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.vnf("r2").unwrap().datapath.io, PortIo::Mmsg);
        assert_eq!(spec.vnf("r1").unwrap().datapath.io, PortIo::TpacketV2);
        let text = chain("", "    datapath: { io: dpdk }\n");
        one_error_at(
            &text,
            "dpdk",
            "io `dpdk` is not one of mmsg, tpacket, tpacket_v2, xdp",
        );
        let text = chain("", "    datapath: { io: 1 }\n");
        one_error_at(&text, "1 }", "expected a string for `io`");
    }

    #[test]
    fn poll_names_a_mode_and_busy_poll_is_its_older_spelling() {
        let spec = parse(
            "t.yaml",
            &chain(
                "defaults:\n  datapath: { busy_poll: true }\n",
                "    datapath: { poll: adaptive }\n",
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.vnf("r1").unwrap().datapath.poll, PollMode::Busy);
        assert_eq!(spec.vnf("r2").unwrap().datapath.poll, PollMode::Adaptive);
        let spec = parse("t.yaml", &chain("", "")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.vnf("r1").unwrap().datapath.poll, PollMode::Sleep);
        let text = chain("", "    datapath: { poll: spin }\n");
        one_error_at(
            &text,
            "spin",
            "poll mode `spin` is not one of sleep, adaptive, busy",
        );
        let text = chain("", "    datapath: { poll: busy, busy_poll: true }\n");
        one_error_at(&text, "true }", "both `poll` and `busy_poll` are given");
    }

    #[test]
    fn tap_io_names_a_tap_port_kind_and_defaults_to_read_write() {
        let spec = parse("t.yaml", &chain("", "    datapath: { tap_io: io_uring }\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.vnf("r1").unwrap().datapath.tap_io, TapIo::PerFrame);
        assert_eq!(spec.vnf("r2").unwrap().datapath.tap_io, TapIo::Uring);
        let text = chain("", "    datapath: { tap_io: aio }\n");
        one_error_at(
            &text,
            "aio",
            "tap_io `aio` is not one of read_write, io_uring",
        );
        let labels: Vec<&str> = TapIo::ALL.iter().map(|t| t.label()).collect();
        let key = super::keys::DATAPATH
            .keys
            .iter()
            .find(|k| k.name == "tap_io")
            .unwrap();
        assert!(matches!(key.ty, super::keys::Ty::Enum(names) if names == labels));
    }

    #[test]
    fn the_schema_lists_every_poll_mode() {
        let labels: Vec<&str> = PollMode::ALL.iter().map(|m| m.label()).collect();
        for section in [&super::keys::DATAPATH, &super::keys::GROUP_DATAPATH] {
            let key = section.keys.iter().find(|k| k.name == "poll").unwrap();
            assert!(matches!(key.ty, super::keys::Ty::Enum(names) if names == labels));
        }
    }

    #[test]
    fn the_schema_lists_every_port_kind() {
        let labels: Vec<&str> = PortIo::ALL.iter().map(|io| io.label()).collect();
        let key = super::keys::DATAPATH
            .keys
            .iter()
            .find(|k| k.name == "io")
            .unwrap();
        assert!(matches!(key.ty, super::keys::Ty::Enum(names) if names == labels));
    }

    #[test]
    fn io_xdp_turns_offload_off_and_refuses_it_on() {
        let spec = parse("t.yaml", &chain("", "    datapath: { io: xdp }\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        let r2 = &spec.vnf("r2").unwrap().datapath;
        assert_eq!((r2.io, r2.offload), (PortIo::Xdp, false));
        assert!(
            spec.vnf("r1").unwrap().datapath.offload,
            "others keep the default"
        );
        let spec = parse(
            "t.yaml",
            &chain("", "    datapath: { io: xdp, offload: false }\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!spec.vnf("r2").unwrap().datapath.offload);
        let text = chain("", "    datapath: { io: xdp, offload: true }\n");
        one_error_at(&text, "true }", "cannot carry 64 KB super-frames");
        // Inherited: xdp from defaults, offload: true on the VNF.
        let text = chain(
            "defaults:\n  datapath: { io: xdp }\n",
            "    datapath: { offload: true }\n",
        );
        one_error_at(&text, "true }", "`offload: true` with `io: xdp`");
        // Offload from defaults, xdp on the VNF: the VNF's io wins.
        let spec = parse(
            "t.yaml",
            &chain(
                "defaults:\n  datapath: { offload: true }\n",
                "    datapath: { io: xdp }\n",
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!spec.vnf("r2").unwrap().datapath.offload);
    }

    #[test]
    fn io_xdp_refuses_an_mtu_native_xdp_on_veth_cannot_take() {
        let links = |mtu: u32| {
            format!(
                "name: t\nhosts:\n  h1: {{ interfaces: {{ eth0: {{ address: 10.0.1.10/24 }} }} }}\n  \
                 h2: {{ interfaces: {{ eth0: {{ address: 10.0.2.10/24 }} }} }}\nvnfs:\n  \
                 r1: {{ module: router, ports: [a, b], datapath: {{ io: xdp }} }}\nlinks:\n  \
                 - [h1:eth0, r1:a]\n  - {{ a: r1:b, b: h2:eth0, mtu: {mtu} }}\n"
            )
        };
        parse("t.yaml", &links(3506)).unwrap_or_else(|e| panic!("{e}"));
        let text = links(3507);
        one_error_at(&text, "{ a: r1:b", "link MTU 3507 is above 3506");
    }
}
