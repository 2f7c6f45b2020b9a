//! `report.html`: report.md for people who open results in a browser, as
//! one self-contained file (the figures inline as SVG, the style inline,
//! no script, nothing fetched). The manifest and the signature cover it like
//! every other file.
//!
//! report.md holds text from results.json (ids, warnings), which may have
//! been crafted: raw HTML in the Markdown becomes text, except the two tags
//! the report itself writes to fold long tables (`<details><summary>` and
//! `</details>`).

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};
use vmbench_host::files::OutputDir;

/// The largest figure inlined (a report's are tens of KiB).
const MAX_FIGURE_BYTES: u64 = 4 << 20;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111}\
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}\
th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2em}blockquote{border-left:4px solid #d33;margin:1em 0;padding:.2em 1em;background:#fff4f4}\
details{margin:1em 0}summary{cursor:pointer;font-weight:600}svg{max-width:100%;height:auto;display:block;margin:1em 0}";

/// Whether `raw` is one of the folding tags report.md writes.
fn is_fold_tag(raw: &str) -> bool {
    let t = raw.trim();
    if t == "</details>" {
        return true;
    }
    t.strip_prefix("<details><summary>")
        .and_then(|r| r.strip_suffix("</summary>"))
        .is_some_and(|summary| !summary.contains(['<', '>', '&']))
}

/// The HTML page of `markdown`, with each `![alt](plots/NAME.svg)` image
/// replaced by the figure read from `dir` (a figure that cannot be read
/// stays a link).
pub fn render(markdown: &str, title: &str, dir: &OutputDir) -> String {
    let plots = dir.existing_subdir("plots").ok();
    let mut events = Vec::new();
    let mut in_image = false;
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Image { dest_url, .. }) => {
                let figure = dest_url
                    .strip_prefix("plots/")
                    .filter(|n| n.ends_with(".svg") && !n.contains('/'))
                    .and_then(|n| plots.as_ref()?.read(n, MAX_FIGURE_BYTES).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|svg| svg.trim_start().starts_with("<svg"));
                match figure {
                    Some(svg) => events.push(Event::Html(CowStr::from(svg))),
                    None => events.push(Event::Text(CowStr::from(format!("[figure {dest_url}]")))),
                }
                in_image = true;
            }
            Event::End(TagEnd::Image) => in_image = false,
            // The image's alt text: the figure has its own title.
            _ if in_image => {}
            Event::Html(raw) | Event::InlineHtml(raw) => {
                if is_fold_tag(&raw) {
                    events.push(Event::Html(raw));
                } else {
                    events.push(Event::Text(raw));
                }
            }
            e => events.push(e),
        }
    }
    let mut body = String::new();
    html::push_html(&mut body, events.into_iter());
    let title = html_escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_from_results_becomes_text_and_figures_go_inline() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutputDir::create(tmp.path()).unwrap();
        dir.subdir("plots")
            .unwrap()
            .write(
                "a.svg",
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"><line/></svg>",
            )
            .unwrap();
        let md = "# t\n\n<script>alert(1)</script>\n\n| x |\n|---|\n| <img src=x onerror=alert(1)> |\n\n<details><summary>All 3 rows</summary>\n\n| a |\n|---|\n| 1 |\n\n</details>\n\n![fig](plots/a.svg)\n\n![gone](plots/missing.svg)\n";
        let page = render(md, "t <x>", &dir);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(
            page.contains("<details><summary>All 3 rows</summary>"),
            "{page}"
        );
        assert!(page.contains("<svg xmlns"), "{page}");
        assert!(page.contains("[figure plots/missing.svg]"), "{page}");
        assert!(page.contains("<title>t &lt;x&gt;</title>"), "{page}");
        assert!(!is_fold_tag("<details><summary><img></summary>"));
    }
}
