//! Typed access to the YAML tree: the error collector and the checks that
//! a node is a mapping, list, string, ... and that a mapping has only the
//! keys its section of the key table allows.

use super::super::error::{suggest, ChainError};
use super::super::spec::Span;
use super::super::yaml::{Node, NodeValue};
use super::keys::Section;

/// Collects errors for one file.
pub(super) struct Ctx<'f> {
    pub(super) file: &'f str,
    pub(super) errors: Vec<ChainError>,
}

impl Ctx<'_> {
    pub(super) fn err(&mut self, span: Span, message: impl Into<String>) {
        self.push(span, message.into(), None);
    }

    pub(super) fn hint(&mut self, span: Span, message: impl Into<String>, hint: impl Into<String>) {
        self.push(span, message.into(), Some(hint.into()));
    }

    pub(super) fn push(&mut self, span: Span, message: String, hint: Option<String>) {
        self.errors.push(ChainError {
            file: self.file.to_owned(),
            line: span.line,
            col: span.col,
            message,
            hint,
        });
    }

    pub(super) fn type_err(&mut self, node: &Node, expected: &str, what: &str) {
        self.err(
            node.span,
            format!("expected {expected} for {what}, found {}", node.kind()),
        );
    }

    /// `node` as a mapping (null counts as empty when `null_ok`).
    pub(super) fn map<'a>(
        &mut self,
        node: &'a Node,
        what: &str,
        null_ok: bool,
    ) -> Option<&'a [(Node, Node)]> {
        match &node.value {
            NodeValue::Map(m) => Some(m),
            NodeValue::Null if null_ok => Some(&[]),
            _ => {
                self.type_err(node, "a mapping", what);
                None
            }
        }
    }

    pub(super) fn seq<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a [Node]> {
        match &node.value {
            NodeValue::Seq(s) => Some(s),
            _ => {
                self.type_err(node, "a list", what);
                None
            }
        }
    }

    pub(super) fn str<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a str> {
        match &node.value {
            NodeValue::Str(s) => Some(s),
            _ => {
                self.type_err(node, "a string", what);
                None
            }
        }
    }

    pub(super) fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            NodeValue::Bool(b) => Some(*b),
            _ => {
                self.type_err(node, "`true` or `false`", what);
                None
            }
        }
    }

    pub(super) fn int(&mut self, node: &Node, what: &str) -> Option<i64> {
        match &node.value {
            NodeValue::Int(i) => Some(*i),
            _ => {
                self.type_err(node, "an integer", what);
                None
            }
        }
    }

    /// A name written as a scalar (strings and numbers alike).
    pub(super) fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.scalar_text() {
            Some(s) if !matches!(node.value, NodeValue::Bool(_)) => Some(s),
            _ => {
                self.type_err(node, "a name", what);
                None
            }
        }
    }

    /// The entries of a mapping, checking for unknown and missing keys
    /// against its `section` of the key table.
    /// Missing keys are reported at `owner` (the parent's key for this
    /// mapping, or the mapping itself).
    pub(super) fn fields<'a>(
        &mut self,
        entries: &'a [(Node, Node)],
        what: &str,
        owner: Span,
        section: &Section,
    ) -> Fields<'a> {
        let allowed = section.allowed();
        let mut fields = Fields::default();
        for (k, v) in entries {
            let Some(key) = k.scalar_text() else {
                self.type_err(k, "a key name", what);
                continue;
            };
            if allowed.clone().any(|a| a == key) {
                fields.entries.push((key, k, v));
            } else {
                let list = allowed
                    .clone()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let hint = match suggest(&key, allowed.clone()) {
                    Some(s) => format!("did you mean `{s}`? allowed keys: {list}"),
                    None => format!("allowed keys: {list}"),
                };
                self.hint(k.span, format!("unknown key `{key}` in {what}"), hint);
            }
        }
        for r in section.required() {
            if fields.get(r).is_none() {
                self.err(owner, format!("{what} is missing the required key `{r}`"));
            }
        }
        fields
    }
}

#[derive(Default)]
pub(super) struct Fields<'a> {
    entries: Vec<(String, &'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| *v)
    }

    pub(super) fn key(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, k, _)| *k)
    }
}
