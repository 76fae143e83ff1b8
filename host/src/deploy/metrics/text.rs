//! The Prometheus text exposition format (version 0.0.4): one family's
//! `# HELP` and `# TYPE` lines, then its samples, with HELP text and label
//! values escaped so that no input can break the scrape.

use std::fmt::{self, Write as _};

/// A sample's value: counters stay exact integers, seconds are floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(u64),
    Float(f64),
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Int(v) => write!(f, "{v}"),
            Num::Float(v) => write!(f, "{v}"),
        }
    }
}

/// One metric family being written: HELP and TYPE once, then samples.
pub struct FamilyWriter<'a> {
    out: &'a mut String,
    name: &'a str,
    labels: &'a [&'a str],
}

impl<'a> FamilyWriter<'a> {
    /// Writes the family's header. `labels` names the label values each
    /// [`sample`](Self::sample) gives, in order.
    pub fn new(
        out: &'a mut String,
        name: &'a str,
        kind: &str,
        help: &str,
        labels: &'a [&'a str],
    ) -> Self {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        FamilyWriter { out, name, labels }
    }

    /// A sample of the family itself; `values` match the family's labels.
    pub fn sample(&mut self, values: &[&str], value: Num) {
        self.sample_of("", values, &[], value);
    }

    /// A sample named `<family><suffix>` (`_bucket`, `_sum`, `_count`) with
    /// `extra` labels after the family's.
    pub fn sample_of(&mut self, suffix: &str, values: &[&str], extra: &[(&str, &str)], value: Num) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let _ = write!(self.out, "{}{suffix}", self.name);
        let mut labels = self.labels.iter().copied().zip(values.iter().copied());
        let mut extra = extra.iter().copied();
        let mut all = labels.by_ref().chain(extra.by_ref()).peekable();
        if all.peek().is_some() {
            self.out.push('{');
            for (i, (k, v)) in all.enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// HELP text: backslash and line feed are escaped.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value: backslash, double quote and line feed are escaped.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_with_backslash_and_newline_stays_on_one_line() {
        let mut out = String::new();
        let mut f = FamilyWriter::new(&mut out, "m", "gauge", "a\\b\nc", &["vnf"]);
        f.sample(&["x\"y\\z\nw"], Num::Int(3));
        assert_eq!(
            out,
            "# HELP m a\\\\b\\nc\n# TYPE m gauge\nm{vnf=\"x\\\"y\\\\z\\nw\"} 3\n"
        );
    }

    #[test]
    fn samples_without_labels_and_with_suffixes() {
        let mut out = String::new();
        let mut f = FamilyWriter::new(&mut out, "h", "histogram", "H.", &[]);
        f.sample(&[], Num::Float(0.5));
        f.sample_of("_bucket", &[], &[("le", "+Inf")], Num::Int(2));
        assert_eq!(
            out,
            "# HELP h H.\n# TYPE h histogram\nh 0.5\nh_bucket{le=\"+Inf\"} 2\n"
        );
    }
}
