//! Aligned plain-text table for terminal output.

use vmbench_host::rows::SpecRow;

pub fn render(rows: &[SpecRow]) -> String {
    let key_w = rows
        .iter()
        .map(|r| r.key.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let mut section = "";
    for r in rows {
        if r.section != section {
            if !section.is_empty() {
                out.push('\n');
            }
            section = r.section;
            out.push_str(&format!("[{section}]\n"));
        }
        out.push_str(&format!("  {:<key_w$}  {}\n", r.key, r.value));
    }
    out
}
