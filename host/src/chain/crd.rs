//! The Kubernetes `ServiceChain` custom resource definition, derived from
//! the chain-file schema (docs/KUBERNETES.md): its `spec` holds what a chain
//! file holds, plus `placement`. `nfvhost schema --crd` prints it; the
//! checked-in `deploy/kubernetes/servicechain-crd.yaml` is its output.
//!
//! Kubernetes wants a *structural* OpenAPI v3.0 schema, so the JSON Schema
//! (draft 2020-12) is rewritten: `$ref`s inlined, `null` alternatives
//! become `nullable`, integer-or-string becomes `x-kubernetes-int-or-string`,
//! alternatives of different types (a link as a pair or a mapping, a link
//! end as `node:port` or a VXLAN far end) are accepted as they are
//! (`x-kubernetes-preserve-unknown-fields`; the agent's own validation,
//! with line and column, refuses what is wrong), `propertyNames` and
//! `additionalProperties: false` go (the API server prunes unknown
//! fields), and a numeric `exclusiveMinimum` becomes OpenAPI's boolean.

use serde_json::{json, Map, Value};

/// The API group of nfvhost's resources.
pub const GROUP: &str = "nfvhost.dev";
/// The version of the `ServiceChain` resource.
pub const VERSION: &str = "v1alpha1";

/// The CRD as JSON.
pub fn crd() -> Value {
    let schema = super::schema();
    let defs = schema["$defs"].as_object().cloned().unwrap_or_default();
    let mut spec = structural(&schema, &defs);
    spec["description"] =
        json!("What a chain file holds (docs/chain.schema.json), plus `placement`.");
    spec["properties"]["placement"] = json!({
        "description": "Host or VNF name to Kubernetes node name; the controller places the others and writes one chain file per node, joined by VXLAN links.",
        "type": "object",
        "additionalProperties": { "type": "string" },
    });
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("servicechains.{GROUP}") },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": "ServiceChain",
                "listKind": "ServiceChainList",
                "plural": "servicechains",
                "singular": "servicechain",
                "shortNames": ["sc"],
            },
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": { "type": "string" },
                        "kind": { "type": "string" },
                        "metadata": { "type": "object" },
                        "spec": spec,
                        "status": {
                            "description": "Written by the controller and the node agents: per node, the chain deployed there, its nodes' namespaces and workers, and the metrics endpoint.",
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                        },
                    },
                }},
            }],
        },
    })
}

/// The CRD as a YAML document.
pub fn crd_yaml() -> String {
    let mut out = String::new();
    let mut emitter = yaml_rust2::YamlEmitter::new(&mut out);
    emitter
        .dump(&to_yaml(&crd()))
        .expect("writing to a String cannot fail");
    out.push('\n');
    out
}

fn to_yaml(v: &Value) -> yaml_rust2::Yaml {
    use yaml_rust2::Yaml;
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(to_yaml).collect()),
        Value::Object(m) => Yaml::Hash(
            m.iter()
                .map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

/// `s` as a structural OpenAPI v3.0 schema (see the module documentation).
fn structural(s: &Value, defs: &Map<String, Value>) -> Value {
    let Value::Object(m) = s else {
        return s.clone();
    };
    if let Some(name) = m
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        let mut out = structural(&defs[name], defs);
        if let Some(d) = m.get("description") {
            out["description"] = d.clone();
        }
        return out;
    }
    if let Some(Value::Array(branches)) = m.get("oneOf") {
        let is_null = |b: &&Value| b.get("type") == Some(&json!("null"));
        let typed = |b: &Value| b.get("type").is_some() || b.get("$ref").is_some();
        let mut out = if branches.len() == 2 && branches.iter().filter(is_null).count() == 1 {
            let mut out = structural(branches.iter().find(|b| !is_null(b)).unwrap(), defs);
            out["nullable"] = json!(true);
            Some(out)
        } else if branches.iter().all(typed) {
            Some(json!({ "x-kubernetes-preserve-unknown-fields": true }))
        } else {
            None
        };
        if let Some(out) = out.as_mut() {
            if let Some(d) = m.get("description") {
                out["description"] = d.clone();
            }
            return out.take();
        }
    }
    let mut out = Map::new();
    for (k, v) in m {
        match (k.as_str(), v) {
            ("$schema" | "$ref" | "$defs" | "title" | "propertyNames", _) => {}
            ("additionalProperties", Value::Bool(false)) => {}
            ("type", Value::Array(types)) => {
                let types: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                let real: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
                if real.len() < types.len() {
                    out.insert("nullable".into(), json!(true));
                }
                match real.as_slice() {
                    [one] => {
                        out.insert("type".into(), json!(one));
                    }
                    _ => {
                        out.insert("x-kubernetes-int-or-string".into(), json!(true));
                    }
                }
            }
            ("exclusiveMinimum", Value::Number(n)) => {
                out.insert("minimum".into(), Value::Number(n.clone()));
                out.insert("exclusiveMinimum".into(), json!(true));
            }
            ("properties", Value::Object(props)) => {
                let props: Map<String, Value> = props
                    .iter()
                    .map(|(k, v)| (k.clone(), structural(v, defs)))
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            ("items" | "additionalProperties" | "not", _) => {
                out.insert(k.clone(), structural(v, defs));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    // Kubernetes rejects `minimum` beside int-or-string only when it cannot
    // apply; names are strings or numbers, and their minimum is 0 anyway.
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::{json, Value};
    use yaml_rust2::{Yaml, YamlLoader};

    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn json_of(y: &Yaml) -> Value {
        match y {
            Yaml::Real(r) => r.parse::<f64>().map_or(Value::Null, |f| json!(f)),
            Yaml::Integer(i) => json!(i),
            Yaml::String(s) => json!(s),
            Yaml::Boolean(b) => json!(b),
            Yaml::Array(items) => items.iter().map(json_of).collect(),
            Yaml::Hash(h) => Value::Object(
                h.iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Yaml::String(s) => s.clone(),
                            Yaml::Integer(i) => i.to_string(),
                            other => format!("{other:?}"),
                        };
                        (key, json_of(v))
                    })
                    .collect(),
            ),
            _ => Value::Null,
        }
    }

    /// Every document of every manifest in deploy/kubernetes, as JSON.
    fn manifests() -> Vec<(PathBuf, Value)> {
        let mut docs = Vec::new();
        let dir = repo().join("deploy/kubernetes");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let loaded = YamlLoader::load_from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                for doc in loaded {
                    docs.push((path.clone(), json_of(&doc)));
                }
            }
        }
        docs
    }

    fn checked_in_crd() -> Value {
        manifests()
            .into_iter()
            .find(|(_, d)| d["kind"] == "CustomResourceDefinition")
            .expect("a CRD manifest")
            .1
    }

    fn service_chain(spec: Value) -> Value {
        json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "ServiceChain",
            "metadata": { "name": "site-a" },
            "spec": spec,
        })
    }

    fn chain_file_as_json(rel: &str) -> Value {
        let text = std::fs::read_to_string(repo().join(rel)).unwrap();
        json_of(&YamlLoader::load_from_str(&text).unwrap()[0])
    }

    #[test]
    fn checked_in_crd_is_the_generated_one() {
        let path = repo().join("deploy/kubernetes/servicechain-crd.yaml");
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in.contains(crd_yaml().trim_start_matches("---\n")),
            "{} differs from the chain schema: run `nfvhost schema --crd` into it",
            path.display()
        );
    }

    #[test]
    fn every_manifest_parses_and_names_itself() {
        let docs = manifests();
        let kinds: Vec<&str> = docs
            .iter()
            .filter_map(|(_, d)| d["kind"].as_str())
            .collect();
        for want in [
            "CustomResourceDefinition",
            "DaemonSet",
            "PodMonitor",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Namespace",
        ] {
            assert!(kinds.contains(&want), "no {want} in {kinds:?}");
        }
        for (path, d) in &docs {
            assert!(d["apiVersion"].is_string(), "{}: {d}", path.display());
            assert!(d["metadata"]["name"].is_string(), "{}: {d}", path.display());
        }
        // The agent is privileged, on the host network and PID namespace
        // (it makes namespaces, links and cgroups), and serves /metrics on
        // the port the PodMonitor scrapes.
        let ds = &docs
            .iter()
            .find(|(_, d)| d["kind"] == "DaemonSet")
            .unwrap()
            .1;
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        assert_eq!(pod["hostPID"], true);
        let agent = &pod["containers"][0];
        assert_eq!(agent["securityContext"]["privileged"], true);
        let port = agent["ports"][0]["name"].as_str().unwrap();
        let pm = &docs
            .iter()
            .find(|(_, d)| d["kind"] == "PodMonitor")
            .unwrap()
            .1;
        assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], port);
        assert_eq!(
            pm["spec"]["selector"]["matchLabels"],
            ds["spec"]["template"]["metadata"]["labels"]
        );
    }

    #[test]
    fn the_crd_schema_is_valid_and_takes_the_shipped_site_chains() {
        let crd = checked_in_crd();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        // OpenAPI 3.0 schema objects are JSON Schema draft 4 with extra
        // keywords (nullable, x-kubernetes-*), which draft 4 ignores.
        if let Err(e) = jsonschema::draft4::meta::validate(schema) {
            panic!("not a valid JSON Schema: {e}");
        }
        let v = jsonschema::draft4::new(schema).unwrap();
        for site in [
            "chains/site-a.yaml",
            "chains/site-b.yaml",
            "chains/edge.yaml",
        ] {
            let sample = service_chain(chain_file_as_json(site));
            let errors: Vec<String> = v
                .iter_errors(&sample)
                .map(|e| format!("{e} at {}", e.instance_path))
                .collect();
            assert!(errors.is_empty(), "{site}: {errors:?}");
        }
        let mut placed = chain_file_as_json("chains/site-a.yaml");
        placed["placement"] = json!({ "ra": "node-1", "ha": "node-1" });
        assert!(v.is_valid(&service_chain(placed)));
        // And refuses what the chain schema refuses, where it can say.
        let mut bad = chain_file_as_json("chains/site-a.yaml");
        bad["name"] = json!("Site_A");
        assert!(!v.is_valid(&service_chain(bad)));
        let mut bad = chain_file_as_json("chains/site-a.yaml");
        bad["vnfs"]["ra"]["resources"]["cpu"] = json!(0);
        assert!(!v.is_valid(&service_chain(bad)));
        let mut bad = chain_file_as_json("chains/site-a.yaml");
        bad["hosts"]["ha"]["interfaces"]["eth0"]["mtu"] = json!(10);
        assert!(!v.is_valid(&service_chain(bad)));
        // Links are a pair or a mapping, which a structural schema cannot
        // say: the API server keeps them as written and the agent's own
        // validation (file:line:col) is what refuses a bad one.
        let mut odd = chain_file_as_json("chains/site-a.yaml");
        odd["links"][1]["kind"] = json!("wire");
        assert!(v.is_valid(&service_chain(odd)));
        assert!(!v.is_valid(&json!({ "apiVersion": "x", "kind": "ServiceChain" })));
    }

    #[test]
    fn the_crd_is_structural() {
        // No $ref, no multi-type `type`, no typed alternatives, anywhere.
        fn walk(v: &Value, path: &str) {
            match v {
                Value::Object(m) => {
                    assert!(
                        !m.contains_key("$ref") && !m.contains_key("$defs"),
                        "{path}"
                    );
                    assert!(!m.contains_key("propertyNames"), "{path}");
                    if let Some(t) = m.get("type") {
                        assert!(t.is_string(), "{path}: type {t}");
                    }
                    if let Some(Value::Array(b)) = m.get("oneOf") {
                        assert!(b.iter().all(|b| b.get("type").is_none()), "{path}");
                    }
                    if m.contains_key("properties") {
                        assert_ne!(m.get("additionalProperties"), Some(&json!(false)), "{path}");
                    }
                    for (k, v) in m {
                        walk(v, &format!("{path}.{k}"));
                    }
                }
                Value::Array(items) => items.iter().for_each(|i| walk(i, path)),
                _ => {}
            }
        }
        walk(&crd(), "");
    }
}
