//! A YAML loader that keeps positions.
//!
//! `yaml_rust2::YamlLoader` throws away where each node came from and keeps
//! only the last of two equal keys. This loader builds its own tree from the
//! event parser so that every node (mapping keys included) carries its
//! 1-based line and column, and reports duplicate keys.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::spec::Span;

/// Deepest nesting of sequences and mappings a chain file may use.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a chain file may expand to, aliases counted at their full
/// size (a "billion laughs" file is refused here, not expanded).
pub const MAX_NODES: usize = 100_000;

/// A YAML node with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts (for an omitted value, e.g. `key:` with
    /// nothing after it, the position of its key).
    pub span: Span,
    /// The node's value.
    pub value: NodeValue,
}

/// The value of a [`Node`], with plain scalars resolved by the YAML 1.2 core
/// schema (`~`/`null` → null, `true`/`false`, integers incl. `0x`/`0o`,
/// floats); quoted scalars and `!!str` are always strings.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order: (key, value).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// "a string", "a mapping", ...: for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "nothing",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) => "an integer",
            NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    /// The text of a scalar (string, number, boolean); `None` for null,
    /// sequences and mappings.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            NodeValue::Str(s) => Some(s.clone()),
            NodeValue::Int(i) => Some(i.to_string()),
            NodeValue::Float(f) => Some(f.to_string()),
            NodeValue::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The string, if this node is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, if this node is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            NodeValue::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items, if this node is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key`, if this node is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
            .map(|(_, v)| v)
    }

    /// Follows `path` (segments: mapping keys or sequence indices) as far as
    /// it exists and returns the deepest node reached.
    pub fn descend<'a, I: IntoIterator<Item = &'a str>>(&self, path: I) -> &Node {
        let mut node = self;
        for seg in path {
            let next = match &node.value {
                NodeValue::Map(_) => node.get(seg),
                NodeValue::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }
}

/// A problem found while loading: position and message.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    pub span: Span,
    pub message: String,
    pub hint: Option<String>,
}

/// Parses `text` (the first document only). Returns the root node (`None`
/// for an empty document) and the problems found: a syntax error (after
/// which nothing is returned), or duplicate keys (reported, the tree is
/// still returned with both entries).
pub fn load(text: &str) -> (Option<Node>, Vec<LoadError>) {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let result = parser.load(&mut builder, false);
    if builder.over_limit {
        // Refused before the parser gave up (its own recursion limit).
        return (None, builder.errors);
    }
    if let Err(e) = result {
        let m = e.marker();
        let err = LoadError {
            span: Span::new(m.line().max(1), m.col() + 1),
            message: format!("YAML syntax error: {}", e.info()),
            hint: None,
        };
        return (None, vec![err]);
    }
    (builder.root, builder.errors)
}

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        items: Vec<Node>,
        weight: usize,
    },
    Map {
        span: Span,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        weight: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Anchored nodes with their size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    done: bool,
    /// Set when a limit was hit: the tree is dropped.
    over_limit: bool,
    /// Nodes materialized so far, aliases at their full size.
    nodes: usize,
    errors: Vec<LoadError>,
}

fn span_of(mark: Marker) -> Span {
    Span::new(mark.line().max(1), mark.col() + 1)
}

fn is_str_tag(tag: &Option<Tag>) -> bool {
    tag.as_ref().is_some_and(|t| t.suffix == "str")
}

/// Core-schema resolution of a plain scalar.
fn resolve_plain(v: &str) -> NodeValue {
    let int = if let Some(n) = v.strip_prefix("0x") {
        i64::from_str_radix(n, 16).ok()
    } else if let Some(n) = v.strip_prefix("0o") {
        i64::from_str_radix(n, 8).ok()
    } else if let Some(n) = v.strip_prefix('+') {
        n.parse::<i64>().ok()
    } else {
        v.parse::<i64>().ok()
    };
    if let Some(i) = int {
        return NodeValue::Int(i);
    }
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return NodeValue::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return NodeValue::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return NodeValue::Float(f64::NAN),
        _ => {}
    }
    let numeric_looking = v.bytes().any(|b| b.is_ascii_digit())
        && v.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if numeric_looking {
        if let Ok(f) = v.parse::<f64>() {
            return NodeValue::Float(f);
        }
    }
    NodeValue::Str(v.to_owned())
}

impl Builder {
    /// Counts `weight` more nodes; past [`MAX_NODES`] reports and stops.
    fn grow(&mut self, span: Span, weight: usize) -> bool {
        self.nodes = self.nodes.saturating_add(weight);
        if self.nodes > MAX_NODES {
            self.refuse(
                span,
                format!("the chain file expands to more than {MAX_NODES} YAML nodes"),
                "a chain file this large is refused; use fewer aliases (`*name`) or split it",
            );
            return false;
        }
        true
    }

    fn refuse(&mut self, span: Span, message: String, hint: &str) {
        self.errors.push(LoadError {
            span,
            message,
            hint: Some(hint.into()),
        });
        self.over_limit = true;
        self.done = true;
    }

    fn finish(&mut self, node: Node, anchor: usize, weight: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), weight));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq {
                items, weight: w, ..
            }) => {
                *w = w.saturating_add(weight);
                items.push(node)
            }
            Some(Frame::Map {
                entries,
                key,
                weight: w,
                ..
            }) => match key.take() {
                None => {
                    *w = w.saturating_add(weight);
                    *key = Some(node)
                }
                Some(k) => {
                    *w = w.saturating_add(weight);
                    let mut v = node;
                    // An omitted value: point at its key instead of wherever
                    // the parser happened to be.
                    if v.value == NodeValue::Null && v.span.line != k.span.line {
                        v.span = k.span;
                    }
                    entries.push((k, v));
                }
            },
        }
    }

    fn check_duplicates(&mut self, entries: &[(Node, Node)]) {
        let mut seen: HashMap<String, Span> = HashMap::new();
        for (k, _) in entries {
            let text = match &k.value {
                NodeValue::Null => "~".to_owned(),
                NodeValue::Seq(_) | NodeValue::Map(_) => continue,
                _ => k.scalar_text().unwrap_or_default(),
            };
            if let Some(first) = seen.get(&text) {
                self.errors.push(LoadError {
                    span: k.span,
                    message: format!(
                        "duplicate key `{text}` (first given at line {}, column {})",
                        first.line, first.col
                    ),
                    hint: Some("remove one of them or merge their contents".into()),
                });
            } else {
                seen.insert(text, k.span);
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        let span = span_of(mark);
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
            Event::DocumentEnd => self.done = true,
            Event::Alias(id) => {
                let weight = self.anchors.get(&id).map_or(1, |(_, w)| *w);
                // Counted before cloning: an alias of an alias doubles.
                if !self.grow(span, weight) {
                    return;
                }
                let node = match self.anchors.get(&id) {
                    Some((n, _)) => Node {
                        span,
                        value: n.value.clone(),
                    },
                    None => Node {
                        span,
                        value: NodeValue::Null,
                    },
                };
                self.finish(node, 0, weight);
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = if style == TScalarStyle::Plain && !is_str_tag(&tag) {
                    resolve_plain(&text)
                } else {
                    NodeValue::Str(text)
                };
                if self.grow(span, 1) {
                    self.finish(Node { span, value }, anchor, 1);
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.refuse(
                    span,
                    format!(
                        "the chain file nests lists and mappings deeper than {MAX_DEPTH} levels"
                    ),
                    "flatten the structure",
                );
            }
            Event::SequenceStart(anchor, _) => {
                if self.grow(span, 1) {
                    self.stack.push(Frame::Seq {
                        span,
                        anchor,
                        items: Vec::new(),
                        weight: 1,
                    })
                }
            }
            Event::MappingStart(anchor, _) => {
                if self.grow(span, 1) {
                    self.stack.push(Frame::Map {
                        span,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                        weight: 1,
                    })
                }
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq {
                    span,
                    anchor,
                    items,
                    weight,
                }) => self.finish(
                    Node {
                        span,
                        value: NodeValue::Seq(items),
                    },
                    anchor,
                    weight,
                ),
                Some(Frame::Map {
                    span,
                    anchor,
                    entries,
                    weight,
                    ..
                }) => {
                    self.check_duplicates(&entries);
                    // A block mapping starts where its first key does (the
                    // parser marks it at the first `:`).
                    let span = match entries.first() {
                        Some((k, _)) if k.span < span => k.span,
                        _ => span,
                    };
                    self.finish(
                        Node {
                            span,
                            value: NodeValue::Map(entries),
                        },
                        anchor,
                        weight,
                    );
                }
                None => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_one_based_and_keys_have_spans() {
        let (root, errs) = load("a: 1\nb:\n  c: [x, 'y']\n");
        assert!(errs.is_empty());
        let root = root.unwrap();
        let m = root.as_map().unwrap();
        assert_eq!(m[0].0.span, Span::new(1, 1));
        assert_eq!(m[0].1.span, Span::new(1, 4));
        assert_eq!(m[0].1.value, NodeValue::Int(1));
        let c = root.descend(["b", "c"]);
        assert_eq!(c.span, Span::new(3, 6));
        let y = root.descend(["b", "c", "1"]);
        assert_eq!(y.span, Span::new(3, 10));
        assert_eq!(y.value, NodeValue::Str("y".into()));
    }

    #[test]
    fn scalars_resolve_by_core_schema() {
        let (root, _) = load("a: 0.5\nb: '1'\nc: ~\nd: true\ne: 10.0.1.1\nf: h1:eth0\ng: 0x10\n");
        let root = root.unwrap();
        assert_eq!(root.get("a").unwrap().value, NodeValue::Float(0.5));
        assert_eq!(root.get("b").unwrap().value, NodeValue::Str("1".into()));
        assert_eq!(root.get("c").unwrap().value, NodeValue::Null);
        assert_eq!(root.get("d").unwrap().value, NodeValue::Bool(true));
        assert_eq!(
            root.get("e").unwrap().value,
            NodeValue::Str("10.0.1.1".into())
        );
        assert_eq!(
            root.get("f").unwrap().value,
            NodeValue::Str("h1:eth0".into())
        );
        assert_eq!(root.get("g").unwrap().value, NodeValue::Int(16));
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let (_, errs) = load("a: 1\nb: 2\na: 3\n");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].span, Span::new(3, 1));
        assert!(errs[0].message.contains("duplicate key `a`"));
    }

    #[test]
    fn syntax_error_has_position() {
        let (root, errs) = load("a: [1, 2\nb: 3\n");
        assert!(root.is_none());
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.starts_with("YAML syntax error"));
    }

    #[test]
    fn billion_laughs_is_refused_not_expanded() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let (root, errs) = load(&text);
        assert!(root.is_none());
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].message.contains("more than 100000 YAML nodes"),
            "{errs:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn small_aliases_still_work() {
        let (root, errs) = load("a: &x {k: 1}\nb: *x\n");
        assert!(errs.is_empty());
        assert_eq!(root.unwrap().descend(["b", "k"]).value, NodeValue::Int(1));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text: String = (0..100).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        let (root, errs) = load(&text);
        assert!(root.is_none());
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].message.contains("deeper than 64 levels"),
            "{errs:?}"
        );
        assert_eq!(errs[0].span.line, 65);
        // Far deeper flow nesting is refused too, without recursing.
        let text = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let (root, errs) = load(&text);
        assert!(root.is_none());
        assert_eq!(errs.len(), 1, "{errs:?}");
    }

    #[test]
    fn empty_value_points_at_key() {
        let (root, _) = load("a:\nb: 1\n");
        let root = root.unwrap();
        assert_eq!(root.get("a").unwrap().span, Span::new(1, 1));
    }
}
