//! The one way the CLI prints a table: columns sized to their contents,
//! no borders, two spaces between columns (as `docker ps` does); a cell may
//! hold several lines.

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

/// A table with this header; the columns in `right` are right-aligned
/// (numbers).
pub fn new(header: &[&str], right: &[usize]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for (i, c) in t.column_iter_mut().enumerate() {
        c.set_padding((0, 2));
        if right.contains(&i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// The table as text, without trailing spaces, ending in a newline.
pub fn render(t: &Table) -> String {
    let mut out = String::new();
    for line in t.to_string().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell() {
        let mut t = new(&["NAME", "PPS"], &[1]);
        t.add_row(vec!["a-much-longer-name", "5"]);
        t.add_row(vec!["b", "12345"]);
        t.add_row(vec!["c\nc2", "7"]);
        assert_eq!(
            render(&t),
            "NAME                  PPS\n\
             a-much-longer-name      5\n\
             b                   12345\n\
             c                       7\n\
             c2\n"
        );
    }
}
