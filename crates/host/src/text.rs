//! Text from elsewhere (a results.json, the guest's console and replies)
//! made safe to print on an operator's terminal: control characters
//! (escape sequences among them, which can move the cursor, retitle the
//! window or rewrite what was printed before) are shown as `\x..` or
//! `\u{..}` instead of being sent raw.

/// `s` with every control character escaped, line breaks included: for
/// one-line messages.
pub fn printable(s: &str) -> String {
    escape(s, false)
}

/// `s` with every control character but the line break and the tab
/// escaped: for multi-line text such as a console's tail or a table.
pub fn printable_lines(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, keep_lines: bool) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' | '\t' if keep_lines => out.push(c),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_other_controls_are_shown_not_sent() {
        let evil = "ok\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{9b}31mred\nnext\tcol";
        let one = printable(evil);
        assert!(!one.chars().any(char::is_control), "{one:?}");
        assert_eq!(
            one,
            "ok\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x9b31mred\\x0anext\\x09col"
        );
        let many = printable_lines(evil);
        assert!(many.contains("red\nnext\tcol"), "{many:?}");
        assert!(!many.contains('\u{1b}') && !many.contains('\r'), "{many:?}");
        assert_eq!(printable("plain µs text"), "plain µs text");
    }
}
