//! report.html as a browser shows it: headless Chromium (Debian's
//! `chromium`) opens the page rendered from the example run, and a
//! screenshot must show the first screen's figures (their lines' colours)
//! with no console message; the same page with its figures taken out must
//! fail that check.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::path::{Path, PathBuf};
use std::process::Command;
use vmbench_testkit::require;

const CHROMIUM: &str = "/usr/bin/chromium";

fn repo() -> PathBuf {
    vmbench_testkit::repo_root()
}

/// Screenshot of `page` (1200×2400 CSS pixels), and what Chromium logged.
fn screenshot(page: &Path, dir: &Path, name: &str) -> (png::Decoder<std::fs::File>, String) {
    let shot = dir.join(format!("{name}.png"));
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2400",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join(format!("{name}-profile")).display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(shot.is_file(), "no screenshot: {log}");
    (png::Decoder::new(std::fs::File::open(&shot).unwrap()), log)
}

/// Pixels in the colours the figures draw their lines with (the plots'
/// palette), which nothing else on the page uses.
fn figure_pixels(decoder: png::Decoder<std::fs::File>) -> usize {
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let palette = [
        (31, 119, 180),
        (214, 39, 40),
        (44, 160, 44),
        (255, 127, 14),
        (148, 103, 189),
    ];
    buf[..info.buffer_size()]
        .chunks_exact(channels)
        .filter(|p| {
            palette.iter().any(|(r, g, b)| {
                (i32::from(p[0]) - r).abs() < 24
                    && (i32::from(p[1]) - g).abs() < 24
                    && (i32::from(p[2]) - b).abs() < 24
            })
        })
        .count()
}

fn console_messages(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

#[test]
#[ignore = "needs chromium: renders report.html headless"]
fn report_html_shows_its_figures_in_a_browser() {
    require(&[(Path::new(CHROMIUM).exists(), "chromium")]);
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::copy(
        repo().join("reports/example-tcg/results.json"),
        run.join("results.json"),
    )
    .unwrap();
    vmbench_publish::render_dir(&run).unwrap();
    let page = run.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: no script, nothing fetched.
    assert!(!html.contains("<script"));
    assert!(!html.contains("<img"));
    assert!(!html.contains("src=\"http"));
    assert!(html.matches("<svg").count() >= 2);

    let (shot, log) = screenshot(&page, tmp.path(), "with");
    let with = figure_pixels(shot);
    assert!(
        console_messages(&log).is_empty(),
        "{:?}",
        console_messages(&log)
    );
    assert!(
        with > 2000,
        "only {with} figure pixels: the figures did not render"
    );

    // The check fails on the same page without its figures.
    let mut stripped = html.clone();
    while let (Some(a), Some(b)) = (stripped.find("<svg"), stripped.find("</svg>")) {
        stripped.replace_range(a..b + "</svg>".len(), "");
    }
    let bare = run.join("no-figures.html");
    std::fs::write(&bare, stripped).unwrap();
    let (shot, _) = screenshot(&bare, tmp.path(), "without");
    let without = figure_pixels(shot);
    assert!(
        without * 20 < with,
        "{without} figure pixels without figures, {with} with"
    );
}
