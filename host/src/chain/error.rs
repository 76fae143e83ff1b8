//! Errors found in a chain file.

use std::fmt;

/// One problem in a chain file, with its position.
///
/// Displays as `chains/basic.yaml:12:7: <message>` followed, if there is a
/// hint, by `\n  hint: <hint>`. `line` and `col` are 1-based; both are 0 for
/// a problem with the file as a whole (it cannot be read), which displays as
/// `chains/basic.yaml: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ChainError {}

/// Every problem found in a chain file, in file order. Displays one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainErrors(pub Vec<ChainError>);

impl ChainErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ChainError> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a ChainErrors {
    type Item = &'a ChainError;
    type IntoIter = std::slice::Iter<'a, ChainError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ChainErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ChainErrors {}

/// "did you mean `x`?" for `word` among `candidates`: the closest by edit
/// distance, if close enough to be a plausible typo.
pub fn suggest<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let w = word.to_ascii_lowercase();
    let limit = match w.chars().count() {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|c| (edit_distance(&w, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

/// Levenshtein distance, counting an adjacent transposition as one edit.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_hint() {
        let e = ChainError {
            file: "chains/basic.yaml".into(),
            line: 12,
            col: 7,
            message: "bad".into(),
            hint: Some("fix it".into()),
        };
        assert_eq!(e.to_string(), "chains/basic.yaml:12:7: bad\n  hint: fix it");
        let e2 = ChainError {
            hint: None,
            ..e.clone()
        };
        assert_eq!(
            ChainErrors(vec![e2.clone(), e2]).to_string(),
            "chains/basic.yaml:12:7: bad\nchains/basic.yaml:12:7: bad"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("adress", "address"), 1);
        assert_eq!(edit_distance("gatewya", "gateway"), 1);
        assert_eq!(
            suggest("adresses", ["address", "addresses", "dhcp", "mtu"]),
            Some("addresses".into())
        );
        assert_eq!(suggest("zzzz", ["address", "dhcp"]), None);
    }
}
