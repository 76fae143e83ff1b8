//! The Grafana dashboards in `dashboards/`: the rules they follow, that every
//! query parses as PromQL, names only metrics the exporter serves, and
//! returns data from a real Prometheus scraping a live `chains/basic.yaml`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{have_root, nfvhost, root, run_ok, scrape, wait_for, Chain};

const METRICS: &str = "127.0.0.1:9464";
const FILES: [&str; 2] = ["nfvhost-chain-overview.json", "nfvhost-vnf-detail.json"];
const DATASOURCE: &str = "${datasource}";

/// One dashboard file, parsed.
struct Dashboard {
    file: &'static str,
    json: Value,
}

fn dashboards() -> Vec<Dashboard> {
    FILES
        .iter()
        .map(|file| {
            let path = root().join("dashboards").join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let json =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
            Dashboard { file, json }
        })
        .collect()
}

/// Every panel, including those nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().map(Vec::as_slice).unwrap_or_default() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A query of a panel (or of a template variable).
struct Query {
    file: &'static str,
    panel: String,
    expr: String,
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {:?}: {}", self.file, self.panel, self.expr)
    }
}

/// Every `targets[].expr` of every panel.
fn panel_queries() -> Vec<Query> {
    let mut out = Vec::new();
    for d in dashboards() {
        for panel in panels(&d.json) {
            for target in panel["targets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let expr = target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: a target without expr: {target}", d.file));
                out.push(Query {
                    file: d.file,
                    panel: panel["title"].as_str().unwrap_or("").into(),
                    expr: expr.into(),
                });
            }
        }
    }
    assert!(
        out.len() > 10,
        "suspiciously few dashboard queries: {}",
        out.len()
    );
    out
}

/// Every annotation query (restarts, replaces).
fn annotation_queries() -> Vec<Query> {
    let mut out = Vec::new();
    for d in dashboards() {
        for a in d.json["annotations"]["list"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let expr = a["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: an annotation without expr: {a}", d.file));
            out.push(Query {
                file: d.file,
                panel: format!("annotation {}", a["name"]),
                expr: expr.into(),
            });
        }
    }
    out
}

/// The template variable `name` of a dashboard.
fn variable<'a>(dashboard: &'a Value, name: &str) -> Option<&'a Value> {
    dashboard["templating"]["list"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
}

/// A query variable's query text (a string, or `{query: ...}` as Grafana 10+
/// writes it).
fn variable_query(var: &Value) -> &str {
    var["query"]
        .as_str()
        .or_else(|| var["query"]["query"].as_str())
        .unwrap_or("")
}

/// `label_values(selector, label)` split into its parts.
fn label_values(query: &str) -> Option<(&str, &str)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim(), label.trim()))
}

/// The selectors behind the `chain` and `vnf` variables, with the label each
/// takes its values from.
fn variable_queries() -> Vec<(Query, String)> {
    let mut out = Vec::new();
    for d in dashboards() {
        for name in ["chain", "vnf"] {
            let var =
                variable(&d.json, name).unwrap_or_else(|| panic!("{}: no variable {name}", d.file));
            let q = variable_query(var);
            let (selector, label) = label_values(q)
                .unwrap_or_else(|| panic!("{}: ${name} is not label_values(..): {q}", d.file));
            out.push((
                Query {
                    file: d.file,
                    panel: format!("variable {name}"),
                    expr: selector.into(),
                },
                label.into(),
            ));
        }
    }
    out
}

/// Fills in Grafana's variables the way Grafana would for chain `basic`,
/// VNF `r1`.
fn substitute(expr: &str, rate_interval: &str, interval: &str) -> String {
    expr.replace("$__rate_interval", rate_interval)
        .replace("${__rate_interval}", rate_interval)
        .replace("$__interval", interval)
        .replace("${__interval}", interval)
        .replace("${chain}", "basic")
        .replace("$chain", "basic")
        .replace("${vnf}", "r1")
        .replace("$vnf", "r1")
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// For each byte of `expr`: whether it lies outside PromQL string literals.
fn outside_strings(expr: &str) -> Vec<bool> {
    let bytes = expr.as_bytes();
    let mut code = vec![true; bytes.len()];
    let mut quote = None;
    let mut i = 0;
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (None, b'"' | b'\'' | b'`') => {
                quote = Some(bytes[i]);
                code[i] = false;
            }
            (Some(_), b'\\') => {
                code[i] = false;
                if i + 1 < bytes.len() {
                    code[i + 1] = false;
                }
                i += 1;
            }
            (Some(q), c) => {
                code[i] = false;
                if c == q {
                    quote = None;
                }
            }
            (None, _) => {}
        }
        i += 1;
    }
    code
}

/// The arguments of every call to `rate`, `irate` or `increase`.
fn rate_calls(expr: &str) -> Vec<(&str, &str)> {
    let bytes = expr.as_bytes();
    let code = outside_strings(expr);
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !code[i] || !is_ident(bytes[i]) || (i > 0 && is_ident(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        let name = &expr[start..i];
        let mut open = i;
        while open < bytes.len() && bytes[open] == b' ' {
            open += 1;
        }
        if !matches!(name, "rate" | "irate" | "increase") || bytes.get(open) != Some(&b'(') {
            continue;
        }
        let mut depth = 0;
        let mut end = None;
        for (j, &c) in bytes.iter().enumerate().skip(open) {
            if !code[j] {
                continue;
            }
            match c {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| panic!("unbalanced parentheses after {name} in {expr}"));
        out.push((name, &expr[open + 1..end]));
    }
    out
}

/// Whether a rate-like call's argument ends in `[$__rate_interval]` (or a
/// subquery `[$__rate_interval:...]`).
fn uses_rate_interval(arg: &str) -> bool {
    let arg = arg.trim();
    let Some(body) = arg.strip_suffix(']') else {
        return false;
    };
    let Some((_, range)) = body.rsplit_once('[') else {
        return false;
    };
    let range = range.trim();
    range == "$__rate_interval"
        || range
            .strip_prefix("$__rate_interval")
            .is_some_and(|rest| rest.starts_with(':'))
}

/// Metric names written as identifiers (not inside strings such as
/// `__name__=~"nfvhost_module_.+"`).
fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let code = outside_strings(expr);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("nfvhost_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if code[start] && (start == 0 || !is_ident(bytes[start - 1])) {
            out.push(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

#[test]
fn dashboards_follow_the_rules() {
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for d in dashboards() {
        let (file, json) = (d.file, &d.json);
        let uid = json["uid"].as_str().unwrap_or("");
        if uid.is_empty() || uid.len() > 40 || uid.contains('$') {
            problems.push(format!(
                "{file}: uid {uid:?} is not a fixed uid of at most 40 characters"
            ));
        }
        if !uids.insert(uid.to_string()) {
            problems.push(format!("{file}: uid {uid:?} used twice"));
        }
        if !json["id"].is_null() {
            problems.push(format!(
                "{file}: id must be null so that imports do not clash"
            ));
        }
        if json["title"].as_str().unwrap_or("").is_empty() {
            problems.push(format!("{file}: no title"));
        }
        if !json["schemaVersion"]
            .as_u64()
            .is_some_and(|v| (36..=41).contains(&v))
        {
            problems.push(format!(
                "{file}: schemaVersion {} is not 36..=41",
                json["schemaVersion"]
            ));
        }

        // Variables.
        match variable(json, "datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            other => problems.push(format!(
                "{file}: variable datasource must be type datasource, query prometheus: {other:?}"
            )),
        }
        for (name, want) in [
            ("chain", "label_values(nfvhost_vnf_info, chain)"),
            (
                "vnf",
                "label_values(nfvhost_vnf_info{chain=\"$chain\"}, vnf)",
            ),
        ] {
            match variable(json, name) {
                Some(v) if v["type"] == "query" && variable_query(v) == want => {}
                other => problems.push(format!(
                    "{file}: variable {name} must be a query {want}: {other:?}"
                )),
            }
        }

        // Every `datasource` reference anywhere (panels, targets, variables)
        // goes through the variable.
        fn datasources<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map {
                        if k == "datasource" {
                            out.push((path.clone(), v));
                        }
                        datasources(v, format!("{path}.{k}"), out);
                    }
                }
                Value::Array(list) => {
                    for (i, v) in list.iter().enumerate() {
                        datasources(v, format!("{path}[{i}]"), out);
                    }
                }
                _ => {}
            }
        }
        let mut refs = Vec::new();
        datasources(json, String::new(), &mut refs);
        for (path, ds) in &refs {
            let ok = ds.as_str() == Some(DATASOURCE) || ds["uid"].as_str() == Some(DATASOURCE);
            if !ok {
                problems.push(format!(
                    "{file}: {path}.datasource is {ds}, not {DATASOURCE}"
                ));
            }
        }

        // Panels.
        let panels = panels(json);
        if panels.len() < 8 {
            problems.push(format!("{file}: only {} panels", panels.len()));
        }
        let mut ids = BTreeSet::new();
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("");
            let at = format!("{file}: panel {} {title:?}", panel["id"]);
            if !ids.insert(panel["id"].to_string()) || !panel["id"].is_u64() {
                problems.push(format!("{at}: id missing or not unique"));
            }
            if title.trim().is_empty() {
                problems.push(format!("{at}: no title"));
            }
            if panel["description"]
                .as_str()
                .unwrap_or("")
                .trim()
                .is_empty()
            {
                problems.push(format!("{at}: no description"));
            }
            if panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or("")
                .is_empty()
            {
                problems.push(format!("{at}: no fieldConfig.defaults.unit"));
            }
            if panel["datasource"]["uid"].as_str() != Some(DATASOURCE) {
                problems.push(format!("{at}: datasource is not {DATASOURCE}"));
            }
            let targets = panel["targets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{at}: no targets"));
            }
            for t in targets {
                let expr = t["expr"].as_str().unwrap_or("");
                if expr.is_empty() {
                    problems.push(format!("{at}: a target without expr"));
                }
                if !expr.contains("chain=\"$chain\"") {
                    problems.push(format!(
                        "{at}: query does not select chain=\"$chain\": {expr}"
                    ));
                }
                if !expr.contains("\"$vnf\"") {
                    problems.push(format!(
                        "{at}: query does not select the $vnf variable: {expr}"
                    ));
                }
                for (func, arg) in rate_calls(expr) {
                    if !uses_rate_interval(arg) {
                        problems.push(format!("{at}: {func}() without [$__rate_interval]: {expr}"));
                    }
                }
                // Catch rate functions the scanner would not see.
                let calls = rate_calls(expr).len();
                let mentions = ["rate(", "increase("]
                    .iter()
                    .map(|f| expr.matches(f).count())
                    .sum::<usize>();
                if calls != mentions {
                    problems.push(format!(
                        "{at}: {mentions} rate-like calls but {calls} recognised: {expr}"
                    ));
                }
            }
        }
    }
    // The overview links every panel to the VNF detail of the VNF clicked.
    let all = dashboards();
    let detail = all
        .iter()
        .find(|d| d.file == "nfvhost-vnf-detail.json")
        .expect("the VNF detail dashboard");
    let want = format!("/d/{}/", detail.json["uid"].as_str().unwrap_or(""));
    for d in all
        .iter()
        .filter(|d| d.file == "nfvhost-chain-overview.json")
    {
        for panel in panels(&d.json) {
            let linked = panel["fieldConfig"]["defaults"]["links"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|l| l["url"].as_str())
                .any(|u| {
                    u.starts_with(&want)
                        && u.contains("var-chain=${chain}")
                        && u.contains("var-vnf=${__field.labels.vnf}")
                });
            if !linked {
                problems.push(format!(
                    "{}: panel {} has no data link to {want} with chain and vnf",
                    d.file, panel["title"]
                ));
            }
        }
    }
    // Restarts and replaces are annotations on both dashboards.
    for d in &all {
        for metric in ["nfvhost_vnf_restarts_total", "nfvhost_vnf_replaces_total"] {
            let found = annotation_queries()
                .iter()
                .any(|q| q.file == d.file && metric_names(&q.expr).iter().any(|n| n == metric));
            if !found {
                problems.push(format!("{}: no annotation on {metric}", d.file));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard rules broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn rule_scanners_catch_what_they_should() {
    // The scanners above must be able to fail.
    assert!(uses_rate_interval("x{a=\"b\"}[$__rate_interval]"));
    assert!(uses_rate_interval(
        "label_replace(x, \"a\", \"$1\", \"b\", \"(.+)\")[$__rate_interval:]"
    ));
    assert!(!uses_rate_interval("x[5m]"));
    assert!(!uses_rate_interval("x[$__interval]"));
    assert_eq!(
        rate_calls("sum(irate(a[1m])) / increase(b[2m]) + myrate(c)").len(),
        2
    );
    assert_eq!(rate_calls("sum(rate(a{x=\"rate(\"}[1m]))").len(), 1);
    assert_eq!(
        metric_names("rate(nfvhost_a_total{x=\"nfvhost_b\"}[1m]) / {__name__=~\"nfvhost_c_.+\"}"),
        ["nfvhost_a_total"]
    );
    assert_eq!(
        label_values("label_values(m{chain=\"$chain\"}, vnf)"),
        Some(("m{chain=\"$chain\"}", "vnf"))
    );
}

#[test]
fn every_query_parses_as_promql() {
    let mut queries = panel_queries();
    queries.extend(variable_queries().into_iter().map(|(q, _)| q));
    queries.extend(annotation_queries());
    let dir = tempfile::tempdir().unwrap();
    let check = |exprs: &[&Query]| -> (bool, String) {
        let rules: Vec<Value> = exprs
            .iter()
            .enumerate()
            .map(|(i, q)| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": substitute(&q.expr, "1m", "1m")}))
            .collect();
        // JSON is YAML; promtool reads it as a rules file.
        let file = dir.path().join("rules.yml");
        std::fs::write(
            &file,
            serde_json::json!({"groups": [{"name": "dashboards", "rules": rules}]}).to_string(),
        )
        .unwrap();
        let out = Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(&file)
            .output()
            .expect("running promtool (apt install prometheus)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let all: Vec<&Query> = queries.iter().collect();
    let (ok, text) = check(&all);
    if ok {
        assert!(
            text.contains(&format!("{} rules found", all.len())),
            "promtool did not see every query:\n{text}"
        );
        return;
    }
    // Name the offending expressions one by one.
    let bad: Vec<String> = queries
        .iter()
        .filter_map(|q| match check(&[q]) {
            (true, _) => None,
            (false, text) => Some(format!("{q}\n  {}", text.trim())),
        })
        .collect();
    panic!(
        "promtool check rules failed:\n{text}\noffending queries:\n{}",
        bad.join("\n")
    );
}

/// `# TYPE` of every family, and every sample name, from a scrape.
fn families_and_samples(text: &str) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut types = BTreeMap::new();
    let mut samples = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name.to_string(), kind.to_string());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            samples.insert(name.to_string());
        }
    }
    (types, samples)
}

/// The family a sample name belongs to and its type, accounting for the
/// `_bucket`, `_sum` and `_count` series of histograms.
fn family_of<'a>(name: &'a str, types: &'a BTreeMap<String, String>) -> Option<(&'a str, &'a str)> {
    if let Some(kind) = types.get(name) {
        return Some((name, kind));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(kind) = types
                .get(base)
                .filter(|k| *k == "histogram" || (*k == "summary" && suffix != "_bucket"))
            {
                return Some((base, kind));
            }
        }
    }
    None
}

/// Deploys the basic chain and sends a little traffic, some of it dropped.
fn deploy_with_traffic() -> Chain {
    let chain = Chain::deploy("chains/basic.yaml", "basic", METRICS);
    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "5", "-i", "0.1", "-W", "2", "10.0.2.10"],
    );
    assert!(out.contains("5 received"), "{out}");
    // TTL 1 expires at the router: ttl_exceeded drops and ICMP errors.
    let _ = chain.exec(
        "h1",
        &[
            "ping",
            "-c",
            "3",
            "-i",
            "0.1",
            "-W",
            "1",
            "-t",
            "1",
            "10.0.2.10",
        ],
    );
    chain
}

#[test]
fn queries_reference_only_exported_metrics() {
    if !have_root("queries_reference_only_exported_metrics") {
        return;
    }
    let chain = deploy_with_traffic();
    let text = scrape(&chain.metrics);
    let (types, samples) = families_and_samples(&text);
    let mut problems = Vec::new();
    let mut queries = panel_queries();
    queries.extend(variable_queries().into_iter().map(|(q, _)| q));
    queries.extend(annotation_queries());
    let mut names_seen = BTreeSet::new();
    for q in &queries {
        for name in metric_names(&q.expr) {
            names_seen.insert(name.clone());
            if !samples.contains(&name) {
                problems.push(format!("{q}\n  {name} is not in the live /metrics"));
            }
            if family_of(&name, &types).is_none() {
                problems.push(format!("{q}\n  {name} belongs to no family with a # TYPE"));
            }
        }
        // rate() and increase() only over counters (and histogram series).
        for (func, arg) in rate_calls(&q.expr) {
            for name in metric_names(arg) {
                match family_of(&name, &types) {
                    Some((_, "counter" | "histogram")) => {}
                    other => problems.push(format!(
                        "{q}\n  {func}() over {name}, which is {other:?}, not a counter"
                    )),
                }
            }
        }
        // No query needs a `__name__` regex (module metrics are labelled
        // families).
        if q.expr.contains("__name__") {
            problems.push(format!("{q}\n  selects by __name__"));
        }
    }
    assert!(
        names_seen.len() >= 15,
        "only {} metric names in the dashboards: {names_seen:?}",
        names_seen.len()
    );
    if !problems.is_empty() {
        panic!("dashboard queries name metrics the exporter does not serve:\n{}\n--- /metrics ---\n{text}", problems.join("\n"));
    }

    // And the live output is clean under promtool's linter.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool (apt install prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics on the live scrape failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Percent-encodes everything but ASCII letters and digits.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET path` over HTTP/1.0 (so the body is never chunked): status code and
/// body.
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

/// A Prometheus server in a temporary directory; killed (by pid) and its
/// directory deleted on drop.
struct Prometheus {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus on the shipped `dashboards/prometheus.yml` (its
    /// rules, its file-based service discovery) with 1 s scrapes and the
    /// default (1 m) evaluation interval, discovering the targets in `sd`
    /// (what `nfvhost inspect -o prometheus` prints).
    fn start(sd: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let shipped = std::fs::read_to_string(root().join("dashboards/prometheus.yml")).unwrap();
        let config = shipped
            .replace(
                "  scrape_interval: 15s\n",
                "  scrape_interval: 1s\n  scrape_timeout: 1s\n",
            )
            .replace("  evaluation_interval: 15s\n", "");
        assert!(
            config.contains("scrape_interval: 1s") && !config.contains("evaluation_interval"),
            "dashboards/prometheus.yml no longer has the intervals this test adjusts:\n{shipped}"
        );
        for (file, text) in [
            ("prometheus.yml", config.as_str()),
            ("nfvhost-targets.json", sd),
        ] {
            std::fs::write(dir.path().join(file), text).unwrap();
        }
        std::fs::copy(
            root().join("dashboards/alerts.yml"),
            dir.path().join("alerts.yml"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting /usr/bin/prometheus (apt install prometheus)");
        Prometheus { child, addr, dir }
    }

    /// Waits until Prometheus scrapes a healthy `nfvhost` target for each
    /// of `chains` (labelled by the service discovery list).
    fn wait_up(&self, chains: &[&str]) {
        let up = wait_for(Duration::from_secs(30), || {
            self.api("/api/v1/targets")
                .and_then(|t| t["data"]["activeTargets"].as_array().cloned())
                .is_some_and(|targets| {
                    chains.iter().all(|c| {
                        targets.iter().any(|t| {
                            t["health"] == "up"
                                && t["labels"]["job"] == "nfvhost"
                                && t["labels"]["chain"] == *c
                        })
                    })
                })
        });
        assert!(
            up,
            "Prometheus's nfvhost targets for {chains:?} never came up:\n{:?}\n--- log ---\n{}",
            self.api("/api/v1/targets"),
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path and parse the JSON; None if unreachable.
    fn api(&self, path: &str) -> Option<Value> {
        let (_, body) = http_get(&self.addr, path).ok()?;
        serde_json::from_str(&body).ok()
    }

    /// An instant query.
    fn query(&self, expr: &str) -> Value {
        self.api(&format!("/api/v1/query?query={}", url_encode(expr)))
            .unwrap_or_else(|| panic!("no answer from Prometheus for {expr}\n{}", self.log()))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's pid only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills a background command by its pid when dropped.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sample_values(result: &Value) -> Vec<f64> {
    result["data"]["result"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r["value"][1].as_str().and_then(|v| v.parse().ok()))
        .collect()
}

#[test]
fn prometheus_scrapes_and_every_dashboard_query_returns_data() {
    if !have_root("prometheus_scrapes_and_every_dashboard_query_returns_data") {
        return;
    }
    let chain = deploy_with_traffic();
    // Steady traffic through the router for the whole test (and a deadline
    // so it cannot outlive it), plus TTL-expired packets the router drops.
    let spawn = |args: &[&str]| {
        Background(
            chain
                .command("h1", args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning ping"),
        )
    };
    let _ping = spawn(&["ping", "-q", "-i", "0.05", "-w", "120", "10.0.2.10"]);
    let _expiring = spawn(&[
        "ping",
        "-q",
        "-i",
        "0.2",
        "-t",
        "1",
        "-w",
        "120",
        "10.0.2.10",
    ]);

    let prometheus = Prometheus::start(&inspect_prometheus(Some("basic")));
    prometheus.wait_up(&["basic"]);
    // It loaded the shipped alerting rules, and they evaluate cleanly.
    let loaded = wait_for(Duration::from_secs(90), || {
        prometheus
            .api("/api/v1/rules")
            .and_then(|r| r["data"]["groups"].as_array().cloned())
            .is_some_and(|groups| {
                groups.iter().any(|g| {
                    g["name"] == "nfvhost"
                        && g["rules"].as_array().is_some_and(|rules| {
                            rules.len() >= 6
                                && rules
                                    .iter()
                                    .all(|r| r["health"] == "ok" && r["state"] != "firing")
                        })
                })
            })
    });
    assert!(
        loaded,
        "the alerting rules are not loaded, not evaluated, or fire on a healthy chain:\n{:?}",
        prometheus.api("/api/v1/rules")
    );
    // Enough scrapes for a 5 s rate window (and a subquery at 1 s steps).
    std::thread::sleep(Duration::from_secs(10));

    let mut problems = Vec::new();
    for q in panel_queries() {
        let expr = substitute(&q.expr, "5s", "1s");
        let answer = prometheus.query(&expr);
        let results = answer["data"]["result"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        if answer["status"] != "success" || results == 0 {
            problems.push(format!("{q}\n  as sent: {expr}\n  answer: {answer}"));
            continue;
        }
        let values = sample_values(&answer);
        if values.len() != results {
            problems.push(format!("{q}\n  not an instant vector of numbers: {answer}"));
            continue;
        }
        // Healthy chain: traps and restarts are there, and zero.
        if (expr.contains("nfvhost_vnf_traps_total") || expr.contains("nfvhost_vnf_restarts_total"))
            && values.iter().any(|v| *v != 0.0)
        {
            problems.push(format!(
                "{q}\n  expected zero traps and restarts on a healthy chain: {answer}"
            ));
        }
        // Traffic is flowing: throughput and packet rates are positive.
        let traffic = [
            "rate(nfvhost_port_rx_bytes_total",
            "rate(nfvhost_port_tx_packets_total",
            "rate(nfvhost_vnf_received_packets_total",
        ];
        if traffic.iter().any(|t| expr.contains(t)) && !values.iter().any(|v| *v > 0.0) {
            problems.push(format!(
                "{q}\n  no traffic seen although ping is running: {answer}"
            ));
        }
        if expr.contains("histogram_quantile") && !values.iter().any(|v| v.is_finite() && *v > 0.0)
        {
            problems.push(format!(
                "{q}\n  no finite quantile although the VNF is busy: {answer}"
            ));
        }
    }
    // The variables offer this chain and its VNF.
    for (q, label) in variable_queries() {
        let expr = substitute(&q.expr, "5s", "1s");
        let answer = prometheus.query(&expr);
        let want = if label == "chain" { "basic" } else { "r1" };
        let found = answer["data"]["result"]
            .as_array()
            .is_some_and(|r| r.iter().any(|s| s["metric"][&label] == want));
        if !found {
            problems.push(format!(
                "{q}\n  label_values(.., {label}) would not offer {want:?}: {answer}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard queries without data from a live chain:\n{}\n--- up ---\n{}\n--- series per metric ---\n{}\n--- targets ---\n{:?}\n--- prometheus log ---\n{}",
        problems.join("\n"),
        prometheus.query("up"),
        prometheus.query("count by (__name__) ({job=\"nfvhost\"})"),
        prometheus.api("/api/v1/targets"),
        prometheus.log()
    );
}

/// `nfvhost inspect -o prometheus [-c chain]`: the file-based service
/// discovery list, checked to be one.
fn inspect_prometheus(chain: Option<&str>) -> String {
    let mut cmd = nfvhost();
    cmd.args(["inspect", "-o", "prometheus"]);
    if let Some(c) = chain {
        cmd.args(["-c", c]);
    }
    let text = String::from_utf8(run_ok(&mut cmd).stdout).unwrap();
    let list: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("inspect -o prometheus is not JSON ({e}):\n{text}"));
    for entry in list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {text}"))
    {
        assert!(
            entry["targets"].as_array().is_some_and(|t| t.len() == 1)
                && entry["labels"]["chain"].is_string(),
            "not a file_sd entry with one target and a chain label: {entry}"
        );
    }
    text
}

/// The target `inspect -o prometheus` lists for `chain`.
fn sd_target(sd: &str, chain: &str) -> Option<String> {
    let list: Value = serde_json::from_str(sd).ok()?;
    list.as_array()?
        .iter()
        .find(|e| e["labels"]["chain"] == chain)
        .and_then(|e| e["targets"][0].as_str())
        .map(str::to_owned)
}

/// Destroys a chain by name when dropped (for a second chain deployed under
/// the deploy lock a [`Chain`] already holds).
struct Destroy(&'static str);

impl Drop for Destroy {
    fn drop(&mut self) {
        let _ = nfvhost()
            .args(["destroy", "--cleanup", "--chain", self.0])
            .output();
    }
}

#[test]
fn chains_without_metrics_get_free_ports_and_prometheus_discovers_both() {
    if !have_root("chains_without_metrics_get_free_ports_and_prometheus_discovers_both") {
        return;
    }
    // chains/basic.yaml twice, renamed, without its `metrics:` line.
    let dir = tempfile::tempdir().unwrap();
    let basic = std::fs::read_to_string(root().join("chains/basic.yaml")).unwrap();
    let file = |name: &str| {
        let text = basic
            .replace("name: basic\n", &format!("name: {name}\n"))
            .lines()
            .filter(|l| !l.starts_with("metrics:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains(&format!("name: {name}")) && !text.contains("metrics:"));
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (file_a, file_b) = (file("sd-a"), file("sd-b"));
    let mut a = Chain::deploy(&file_a, "sd-a", "");
    // The second chain, under the lock the first one holds.
    let _ = nfvhost()
        .args(["destroy", "--cleanup", "--chain", "sd-b"])
        .output();
    let _b = Destroy("sd-b");
    run_ok(nfvhost().args(["deploy", &file_b]));

    let sd = inspect_prometheus(None);
    let target_a = sd_target(&sd, "sd-a").unwrap_or_else(|| panic!("sd-a not listed:\n{sd}"));
    let target_b = sd_target(&sd, "sd-b").unwrap_or_else(|| panic!("sd-b not listed:\n{sd}"));
    assert_ne!(target_a, target_b, "two chains on one port:\n{sd}");
    for t in [&target_a, &target_b] {
        let addr: std::net::SocketAddr = t.parse().unwrap();
        assert!(
            addr.ip().is_loopback() && addr.port() != 0,
            "{t} is not a loopback port"
        );
    }
    // `inspect` shows where each chain's metrics are.
    let table =
        String::from_utf8(run_ok(nfvhost().args(["inspect", "-c", "sd-b"])).stdout).unwrap();
    assert!(
        table.contains(&format!("metrics http://{target_b}/metrics")),
        "{table}"
    );
    // Both serve their own chain's metrics.
    a.metrics = target_a.clone();
    let up = |target: &str, chain: &str| {
        scrape(target)
            .lines()
            .any(|l| l == format!("nfvhost_vnf_up{{chain=\"{chain}\",vnf=\"r1\"}} 1"))
    };
    assert!(up(&target_a, "sd-a") && up(&target_b, "sd-b"));
    assert!(!scrape(&target_a).contains("chain=\"sd-b\""));

    // A real Prometheus on the shipped configuration finds both through
    // the file, and keeps the exporter's `chain` label as is.
    let prometheus = Prometheus::start(&sd);
    prometheus.wait_up(&["sd-a", "sd-b"]);
    let chains_seen = || -> BTreeSet<String> {
        prometheus.query("count by (chain) (nfvhost_vnf_up)")["data"]["result"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r["metric"]["chain"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(10), || {
            let seen = chains_seen();
            seen.contains("sd-a") && seen.contains("sd-b")
        }),
        "Prometheus has nfvhost_vnf_up of {:?}\n{}",
        chains_seen(),
        prometheus.log()
    );
    let exported = prometheus.query("count({job=\"nfvhost\", exported_chain!=\"\"})");
    assert_eq!(
        exported["data"]["result"].as_array().map(Vec::len),
        Some(0),
        "series relabelled to exported_chain: {exported}"
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = root().join("dashboards");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("running promtool (apt install prometheus)");
        assert!(
            out.status.success(),
            "promtool {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert is tested: firing (an expected alert) and silent
    // (`exp_alerts: []`) at some evaluation time.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    for want in [
        "NfvhostVnfDown",
        "NfvhostVnfRestarting",
        "NfvhostVnfDropRatioHigh",
        "NfvhostModuleMemoryNearLimit",
        "NfvhostKernelDrops",
    ] {
        assert!(alerts.contains(&want), "alerts.yml has no {want}");
    }
    let cases: Vec<&str> = tests.split("alertname: ").skip(1).collect();
    for alert in alerts {
        let of = cases
            .iter()
            .filter(|c| c.split_whitespace().next() == Some(alert));
        let (silent, firing): (Vec<&&str>, Vec<&&str>) = of.partition(|c| {
            c.lines()
                .nth(1)
                .is_some_and(|l| l.trim() == "exp_alerts: []")
        });
        assert!(
            !silent.is_empty() && !firing.is_empty(),
            "alerts.test.yml must show {alert} both firing and not firing"
        );
    }
}
