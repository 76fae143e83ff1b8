//! Comparing what left a port with what was expected: frame count and
//! bytes (timestamps are not compared), reported as the first difference.

use std::fmt::Write as _;

/// The first difference between the frames that left a port and the
/// expected ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// Frame `frame` (1-based) differs first at byte `offset`.
    Bytes {
        frame: usize,
        offset: usize,
        expected: Vec<u8>,
        got: Vec<u8>,
    },
    /// The frames agree as far as both go, but their counts differ.
    Count { expected: usize, got: usize },
}

/// Compares `got` with `expected` (frame bytes, in order).
pub fn compare<'a>(
    expected: impl IntoIterator<Item = &'a [u8]>,
    got: impl IntoIterator<Item = &'a [u8]>,
) -> Option<Difference> {
    let expected: Vec<&[u8]> = expected.into_iter().collect();
    let got: Vec<&[u8]> = got.into_iter().collect();
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        if e != g {
            let offset = e
                .iter()
                .zip(g.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(e.len().min(g.len()));
            return Some(Difference::Bytes {
                frame: i + 1,
                offset,
                expected: e.to_vec(),
                got: g.to_vec(),
            });
        }
    }
    (expected.len() != got.len()).then_some(Difference::Count {
        expected: expected.len(),
        got: got.len(),
    })
}

/// Bytes shown either side of the first differing byte.
const CONTEXT: usize = 8;

fn hex_around(bytes: &[u8], offset: usize) -> String {
    let start = offset.saturating_sub(CONTEXT);
    let end = (offset + CONTEXT + 1).min(bytes.len());
    let mut s = String::new();
    if start > 0 {
        s.push_str("… ");
    }
    for (i, b) in bytes.iter().enumerate().take(end).skip(start) {
        if i == offset {
            let _ = write!(s, "[{b:02x}] ");
        } else {
            let _ = write!(s, "{b:02x} ");
        }
    }
    if offset >= bytes.len() {
        s.push_str("[end] ");
    } else if end < bytes.len() {
        s.push('…');
    }
    s.trim_end().to_string()
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Bytes {
                frame,
                offset,
                expected,
                got,
            } => {
                write!(
                    f,
                    "frame {frame} differs at byte {offset} (0x{offset:x}; expected {} bytes, got {})\n  expected: {}\n  got:      {}",
                    expected.len(),
                    got.len(),
                    hex_around(expected, *offset),
                    hex_around(got, *offset)
                )
            }
            Difference::Count { expected, got } if got < expected => write!(
                f,
                "expected {expected} frames, got {got}: frame {} and later never left",
                got + 1
            ),
            Difference::Count { expected, got } => write!(
                f,
                "expected {expected} frames, got {got}: frame {} and later were not expected",
                expected + 1
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_differing_frame_and_byte() {
        let a: [&[u8]; 2] = [&[1, 2, 3], &[4, 5, 6, 7]];
        let b: [&[u8]; 2] = [&[1, 2, 3], &[4, 5, 9, 7]];
        assert_eq!(compare(a, a), None);
        let d = compare(a, b).unwrap();
        assert_eq!(
            d,
            Difference::Bytes {
                frame: 2,
                offset: 2,
                expected: vec![4, 5, 6, 7],
                got: vec![4, 5, 9, 7]
            }
        );
        let text = d.to_string();
        assert!(text.contains("frame 2 differs at byte 2"), "{text}");
        assert!(text.contains("04 05 [06] 07"), "{text}");
        assert!(text.contains("04 05 [09] 07"), "{text}");
        // A frame that is a prefix of the other differs where it ends.
        let short: [&[u8]; 1] = [&[1, 2]];
        assert!(matches!(
            compare(short, [a[0]]),
            Some(Difference::Bytes { offset: 2, .. })
        ));
        let d = compare(a, [a[0]]).unwrap();
        assert_eq!(
            d,
            Difference::Count {
                expected: 2,
                got: 1
            }
        );
        assert!(d.to_string().contains("frame 2 and later never left"));
        let d = compare([a[0]], a).unwrap();
        assert!(d
            .to_string()
            .contains("frame 2 and later were not expected"));
    }
}
