//! Shared helpers: the binary, building the VNFs, a deployed-chain guard
//! that always destroys, and reading `/metrics`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The nfvhost binary cargo built for these tests.
pub fn nfvhost() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nfvhost"));
    cmd.current_dir(root());
    cmd
}

/// Builds the wasm VNFs once per test run (`cargo vnfs`).
pub fn vnfs_built() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // `cargo vnfs` is the alias in .cargo/config.toml.
            let status = Command::new(env!("CARGO"))
                .arg("vnfs")
                .current_dir(root())
                .status()
                .expect("running cargo to build the VNFs");
            assert!(status.success(), "building the VNFs failed");
            root().join("target/wasm32-unknown-unknown/wasm")
        })
        .clone()
}

/// Whether we can create namespaces; prints why a test is skipped if not.
pub fn have_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipping {test}: needs root (CI runs it as root)");
    }
    root
}

pub fn deploy_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a command and returns its output, panicking with both streams on
/// failure.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A deployed chain; destroyed on drop, pass or fail.
pub struct Chain {
    pub name: String,
    pub metrics: String,
    _lock: MutexGuard<'static, ()>,
}

impl Chain {
    /// Deploys `file` (relative to the workspace root).
    pub fn deploy(file: &str, name: &str, metrics: &str) -> Chain {
        Self::deploy_with_env(file, name, metrics, &[])
    }

    /// Like [`Chain::deploy`], with extra environment for `nfvhost deploy`
    /// (inherited by its supervisor and workers).
    pub fn deploy_with_env(file: &str, name: &str, metrics: &str, env: &[(&str, &str)]) -> Chain {
        vnfs_built();
        let lock = deploy_lock();
        // A leftover from an earlier, killed run must not fail this one.
        let _ = nfvhost()
            .args(["destroy", "--cleanup", "--chain", name])
            .output();
        let chain = Chain {
            name: name.into(),
            metrics: metrics.into(),
            _lock: lock,
        };
        run_ok(nfvhost().args(["deploy", file]).envs(env.iter().copied()));
        chain
    }

    /// Takes charge of a chain a test deployed itself (while holding the
    /// deploy lock), so that it is destroyed on drop.
    pub fn adopt(name: &str, metrics: &str, lock: MutexGuard<'static, ()>) -> Chain {
        Chain {
            name: name.into(),
            metrics: metrics.into(),
            _lock: lock,
        }
    }

    /// Runs a command in a node's namespace through `nfvhost exec`.
    pub fn exec(&self, node: &str, args: &[&str]) -> Output {
        nfvhost()
            .args(["exec", "--chain", &self.name, node, "--"])
            .args(args)
            .output()
            .expect("running nfvhost exec")
    }

    /// Like [`Chain::exec`], panicking on failure.
    pub fn exec_ok(&self, node: &str, args: &[&str]) -> String {
        String::from_utf8_lossy(
            &run_ok(
                nfvhost()
                    .args(["exec", "--chain", &self.name, node, "--"])
                    .args(args),
            )
            .stdout,
        )
        .into_owned()
    }

    /// A command that runs in a node's namespace, for spawning.
    pub fn command(&self, node: &str, args: &[&str]) -> Command {
        let mut cmd = nfvhost();
        cmd.args(["exec", "--chain", &self.name, node, "--"])
            .args(args);
        cmd
    }

    /// Scrapes `/metrics` and parses it.
    pub fn metrics(&self) -> Metrics {
        Metrics::parse(&scrape(&self.metrics))
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        // --cleanup: a test leaves no logs behind either.
        let out = nfvhost()
            .args(["destroy", "--cleanup", "--chain", &self.name])
            .output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!(
                    "destroy of {} failed: {}",
                    self.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// GET /metrics from `addr`, as text.
pub fn scrape(addr: &str) -> String {
    let mut stream =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// Parsed samples: `name{labels}` → value.
pub struct Metrics(pub BTreeMap<String, f64>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut map = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            map.insert(series.to_string(), value.parse().unwrap_or(f64::NAN));
        }
        Metrics(map)
    }

    /// The value of a sample whose series name and labels match all of
    /// `labels` (a subset match); panics if none or several match.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let hits: Vec<(&String, &f64)> = self
            .0
            .iter()
            .filter(|(k, _)| {
                k.split('{').next() == Some(name)
                    && labels
                        .iter()
                        .all(|(l, v)| k.contains(&format!("{l}=\"{v}\"")))
            })
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "expected one sample of {name}{labels:?}, found {hits:?}"
        );
        *hits[0].1
    }

    /// Sum over every sample of `name` matching `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.split('{').next() == Some(name)
                    && labels
                        .iter()
                        .all(|(l, v)| k.contains(&format!("{l}=\"{v}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Namespaces whose names start with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// cgroup directories nfvhost made for `chain`, on v1 or v2.
pub fn cgroup_dirs(chain: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for base in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/cpu,cpuacct",
    ] {
        let dir = Path::new(base).join("nfvhost").join(chain);
        if dir.exists() {
            found.push(dir);
        }
    }
    found
}

/// Pids of processes whose command line mentions `needle`.
pub fn processes_matching(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && pid != std::process::id() as i32 {
            pids.push(pid);
        }
    }
    pids
}

/// Kernel rx/tx packet counters of an interface inside a node.
pub fn kernel_counters(chain: &Chain, node: &str, ifname: &str) -> (f64, f64) {
    // `dev`: a port may be named like an `ip link show` keyword (`up`).
    let out = chain.exec_ok(node, &["ip", "-j", "-s", "link", "show", "dev", ifname]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = &json[0]["stats64"];
    (
        s["rx"]["packets"].as_f64().unwrap(),
        s["tx"]["packets"].as_f64().unwrap(),
    )
}

/// `/metrics` and the kernel counters of `ifaces` taken in a quiet moment:
/// the kernel counters are read before and after the scrape and must not
/// have moved, so a stray frame (a host's IPv6 router solicitation, an ARP
/// refresh) cannot land between the two readings.
pub fn quiet_snapshot(chain: &Chain, ifaces: &[(&str, &str)]) -> (Metrics, Vec<(f64, f64)>) {
    let read = || {
        ifaces
            .iter()
            .map(|(n, i)| kernel_counters(chain, n, i))
            .collect::<Vec<_>>()
    };
    for _ in 0..20 {
        let first = read();
        std::thread::sleep(Duration::from_millis(100));
        let metrics = chain.metrics();
        if read() == first {
            return (metrics, first);
        }
    }
    panic!("the links never went quiet");
}

/// `[min, avg, max, mdev]` in ms from ping's `rtt min/avg/max/mdev = ...`
/// summary line.
pub fn ping_rtt_ms(ping: &str) -> [f64; 4] {
    let line = ping
        .lines()
        .find(|l| l.starts_with("rtt"))
        .unwrap_or_else(|| panic!("no rtt line in {ping}"));
    let nums = line
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(" ms");
    let v: Vec<f64> = nums.split('/').map(|n| n.parse().unwrap()).collect();
    [v[0], v[1], v[2], v[3]]
}

/// What [`iperf3_tcp_then_udp`] measured.
pub struct Iperf3Figures {
    /// TCP received, bits per second.
    pub tcp_bps: f64,
    pub tcp_retransmits: u64,
    /// UDP at 20 Mb/s: datagrams sent, and the share lost.
    pub udp_packets: u64,
    pub udp_lost_percent: f64,
}

/// Kills the iperf3 server when the measurement ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// iperf3 from `from` to a server on `to` at `addr`: TCP for `tcp_secs`,
/// then UDP at 20 Mb/s for 2 s.
pub fn iperf3_tcp_then_udp(
    chain: &Chain,
    from: &str,
    to: &str,
    addr: &str,
    tcp_secs: u32,
) -> Iperf3Figures {
    let _server = Server(
        chain
            .command(to, &["iperf3", "-s", "-B", addr, "-p", "5201"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start iperf3 -s"),
    );
    assert!(
        wait_for(Duration::from_secs(5), || {
            chain
                .exec(to, &["ss", "-ltn", "sport = :5201"])
                .stdout
                .windows(4)
                .any(|w| w == b"5201")
        }),
        "iperf3 -s never listened on {to}"
    );
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["iperf3", "-c", addr, "-p", "5201", "-J"];
        all.extend_from_slice(args);
        serde_json::from_str(&chain.exec_ok(from, &all)).expect("iperf3 -J output")
    };
    let secs = tcp_secs.to_string();
    let tcp = json(&["-t", &secs]);
    let udp = json(&["-u", "-b", "20M", "-t", "2"]);
    let sum = &udp["end"]["sum"];
    Iperf3Figures {
        tcp_bps: tcp["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .expect("TCP bits per second"),
        tcp_retransmits: tcp["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
        udp_packets: sum["packets"].as_u64().expect("UDP datagrams"),
        udp_lost_percent: sum["lost_percent"].as_f64().expect("UDP loss"),
    }
}
