//! `report.html`: report.md for people who open results in a browser, as
//! one self-contained file (the figures inline as SVG, the style inline,
//! no script, nothing fetched). The manifest and the signature cover it like
//! every other file.
//!
//! report.md holds text from results.json (ids, warnings), which may have
//! been crafted: raw HTML in the Markdown becomes text, except the two tags
//! the report itself writes to fold long tables (`<details><summary>` and
//! `</details>`).

use crate::plots::PlotIndex;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};

/// Compact enough that the first screen (1400×900) holds the banner, the
/// headline table and its two figures side by side; numbers right-aligned
/// (the Markdown's `---:` columns) in tabular figures.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1240px;margin:.8em auto;padding:0 1em;color:#111;line-height:1.35}\
h1{font-size:1.5em;margin:.3em 0}h2{font-size:1.2em;margin:.9em 0 .3em}p{margin:.4em 0}\
table{border-collapse:collapse;margin:.5em 0;font-size:.88em;font-variant-numeric:tabular-nums}th,td{border:1px solid #ccc;padding:.12em .5em;text-align:left}\
th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2em}blockquote{border-left:4px solid #b00;margin:.5em 0;padding:.1em 1em;background:#fff4f4}\
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}svg{max-width:100%;height:auto;display:block;margin:.5em 0}\
p>svg{display:inline-block;vertical-align:top;width:calc(50% - .4em);margin:.25em .2em .25em 0}p>svg:only-child{width:auto;display:block}";

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

/// Whether a link target may stay a link in the page: http, https, or a
/// relative path or fragment (no scheme at all). `javascript:`, `data:`,
/// `vbscript:`, `file:` and every other scheme become plain text, whatever
/// case or entity encoding they came in (pulldown-cmark has decoded
/// entities by now).
fn is_safe_link(url: &str) -> bool {
    let url = url.trim();
    // A scheme is what comes before the first ':' if that comes before any
    // '/', '?' or '#' (RFC 3986); control characters and spaces are not
    // in any URL vmbench writes.
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return false;
    }
    match url.find(':') {
        None => true,
        Some(colon) if url[..colon].contains(['/', '?', '#']) => true,
        Some(colon) => {
            let scheme = url[..colon].to_ascii_lowercase();
            scheme == "http" || scheme == "https"
        }
    }
}

/// The HTML page of `markdown`, with each `![alt](plots/NAME.svg)` image
/// replaced by the figure `plots` wrote (the bytes rendered in this process,
/// not what is on disk by then; an unknown figure stays text), and every
/// link whose target is not http, https or relative turned into its text.
pub fn render(markdown: &str, title: &str, plots: &PlotIndex) -> String {
    let mut events = Vec::new();
    let mut in_image = false;
    let mut dropped_links = 0usize;
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Link { ref dest_url, .. }) if !is_safe_link(dest_url) => {
                dropped_links += 1;
            }
            Event::End(TagEnd::Link) if dropped_links > 0 => dropped_links -= 1,
            Event::Start(Tag::Image { dest_url, .. }) => {
                let figure = plots
                    .svg(&dest_url)
                    .filter(|svg| svg.trim_start().starts_with("<svg"))
                    .map(str::to_string);
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
        let mut plots = PlotIndex::default();
        plots.insert_svg(
            "plots/a.svg",
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><line/></svg>",
        );
        let md = "# t\n\n<script>alert(1)</script>\n\n| x |\n|---|\n| <img src=x onerror=alert(1)> |\n\n<details><summary>All 3 rows</summary>\n\n| a |\n|---|\n| 1 |\n\n</details>\n\n![fig](plots/a.svg)\n\n![gone](plots/missing.svg)\n";
        let page = render(md, "t <x>", &plots);
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

    #[test]
    fn only_http_https_and_relative_links_stay_links() {
        let md = "[a](javascript:alert(1)) [b](JaVaScRiPt&#58;alert(1)) [c](data:text/html,x) \
                  <javascript:alert(2)> [d](vbscript:x) [e](file:///etc/passwd) \
                  [ok1](https://example.org/x) [ok2](results.json) [ok3](#top) [ok4](plots/a:b.svg)";
        let page = render(md, "t", &PlotIndex::default());
        for bad in ["javascript", "JaVaScRiPt", "data:", "vbscript", "file:"] {
            assert!(
                !page
                    .to_ascii_lowercase()
                    .contains(&format!("href=\"{}", bad.to_ascii_lowercase())),
                "{bad}: {page}"
            );
        }
        for good in [
            "href=\"https://example.org/x\"",
            "href=\"results.json\"",
            "href=\"#top\"",
            "href=\"plots/a:b.svg\"",
        ] {
            assert!(page.contains(good), "{good}: {page}");
        }
        assert!(page.contains(">a<") || page.contains("a "), "{page}");
    }
}
