//! SVG plots rendered from the results alone: a percentile spectrum per
//! latency measurement (HdrHistogram style: latency against percentile on a
//! 1/(1 − p) axis) and per group of rows that belong together, a drift
//! series where the row drifts, and the shm bandwidth curve over transfer
//! sizes. Axis labels are in human units (ns/µs/ms, B/KiB/MiB).

use crate::PublishError;
use plotters::prelude::*;
use vmbench_host::files::OutputDir;
use vmbench_results::{Measurement, RunRecord, Suite};

/// Which plot files exist, by measurement (relative paths for links).
#[derive(Debug, Default, Clone)]
pub struct PlotIndex {
    entries: Vec<(String, &'static str, String)>,
    groups: Vec<(&'static str, String)>,
    bandwidth: Option<String>,
    /// Each figure's SVG as written, by relative path: report.html inlines
    /// these bytes, never what is on disk by then.
    svgs: std::collections::BTreeMap<String, String>,
}

impl PlotIndex {
    /// Records `svg` as the figure at `path` (for tests of the page).
    #[cfg(test)]
    pub(crate) fn insert_svg(&mut self, path: &str, svg: &str) {
        self.svgs.insert(path.to_string(), svg.to_string());
    }

    /// The SVG written at `path` (`plots/NAME.svg`), if this index wrote it.
    pub fn svg(&self, path: &str) -> Option<&str> {
        self.svgs.get(path).map(String::as_str)
    }

    /// The plots of measurement `id`: (kind, relative path), kind being `spectrum` or `drift`.
    pub fn for_measurement(&self, id: &str) -> Vec<(&'static str, &str)> {
        self.entries
            .iter()
            .filter(|(m, _, _)| m == id)
            .map(|(_, k, f)| (*k, f.as_str()))
            .collect()
    }

    /// The overlay of a group of [`GROUPS`] (`vmexit`, `shm-rtt`), if drawn.
    pub fn group(&self, name: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|(g, _)| *g == name)
            .map(|(_, f)| f.as_str())
    }

    /// The bandwidth-over-size plot, if there is one.
    pub fn bandwidth(&self) -> Option<&str> {
        self.bandwidth.as_deref()
    }

    /// Every plot file written, relative to the report directory.
    pub fn files(&self) -> Vec<&str> {
        self.entries
            .iter()
            .map(|(_, _, f)| f.as_str())
            .chain(self.groups.iter().map(|(_, f)| f.as_str()))
            .chain(self.bandwidth.as_deref())
            .collect()
    }
}

/// Latency measurements get a spectrum (and a drift plot when they drift); transfers are shown
/// by the bandwidth curve instead.
/// Only ids that are safe as file names get plots (results.json may come
/// from anyone).
fn wants_latency_plots(m: &Measurement) -> bool {
    let latency = match m.id.suite() {
        Some(Suite::Vmexit) => true,
        Some(Suite::Shm) => matches!(
            m.id.local_parts().as_slice(),
            ["rtt", "poll" | "doorbell"] | ["ref", "cacheline-rtt" | "eventfd-rtt"]
        ),
        None => false,
    };
    latency && m.id.is_file_name_safe()
}

/// The value axis: ns when the TSC frequency is known, else ticks.
fn axis(m: &Measurement) -> (&'static str, Box<dyn Fn(f64) -> f64 + '_>) {
    match m.tsc_khz.filter(|k| *k > 0.0) {
        Some(_) => ("ns", Box::new(move |t| m.ns(t).unwrap_or(t))),
        None => ("TSC ticks", Box::new(|t| t)),
    }
}

fn err(e: impl std::fmt::Display) -> PublishError {
    PublishError::Plot(e.to_string())
}

/// Renders every plot under `dir/plots/`; returns the index.
pub fn write_all(r: &RunRecord, dir: &OutputDir) -> Result<PlotIndex, PublishError> {
    let plots = dir.subdir("plots")?;
    let mut idx = PlotIndex::default();
    for m in r
        .results
        .measurements
        .iter()
        .filter(|m| wants_latency_plots(m))
    {
        if let Some(svg) = row_spectrum_svg(m)? {
            let path = idx.keep(&plots, &format!("{}.spectrum.svg", m.id), svg)?;
            idx.entries.push((m.id.to_string(), "spectrum", path));
        }
        if drifts(m)
            && let Some(svg) = drift_svg(m)?
        {
            let path = idx.keep(&plots, &format!("{}.drift.svg", m.id), svg)?;
            idx.entries.push((m.id.to_string(), "drift", path));
        }
    }
    for (name, title, ids) in GROUPS {
        if let Some(svg) = group_spectrum_svg(r, title, ids)? {
            let path = idx.keep(&plots, &format!("{name}.spectrum.svg"), svg)?;
            idx.groups.push((name, path));
        }
    }
    if let Some(svg) = bandwidth_svg(r)? {
        idx.bandwidth = Some(idx.keep(&plots, "shm-bandwidth.svg", svg)?);
    }
    Ok(idx)
}

impl PlotIndex {
    /// Writes `svg` as `plots/<file>` and keeps its bytes for report.html;
    /// returns that relative path.
    fn keep(&mut self, plots: &OutputDir, file: &str, svg: String) -> Result<String, PublishError> {
        plots.write(file, svg.as_bytes())?;
        let path = format!("plots/{file}");
        self.svgs.insert(path.clone(), svg);
        Ok(path)
    }
}

/// The widest value range a plot draws: beyond it (or with a value that is
/// not a finite positive number on a log axis) the record is not one a run
/// writes, and plotting it could take plotters forever.
const MAX_DECADES: f64 = 15.0;

/// A log axis over `lo..hi`, when it is drawable.
fn log_range(lo: f64, hi: f64) -> Option<std::ops::Range<f64>> {
    (lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo && (hi / lo).log10() <= MAX_DECADES)
        .then_some(lo..hi)
}

/// A linear axis over `0..hi`, when it is drawable.
fn linear_range(hi: f64) -> Option<std::ops::Range<f64>> {
    (hi.is_finite() && hi > 0.0 && hi < 1e300).then_some(0.0..hi)
}

/// Where the spectrum's x axis is drawn to: 99.995%.
const SPECTRUM_MAX_X: f64 = 4.3;

/// x of percentile p (0..1) on the spectrum's axis: −log10(1 − p), so
/// 90% is 1, 99% is 2, 99.9% is 3 (HdrHistogram's percentile plots).
fn spectrum_x(p: f64) -> f64 {
    -(1.0 - p).max(1e-9).log10()
}

/// The percentile at x, as an axis label ("50%", "99.9%").
fn percentile_label(x: f64) -> String {
    let p = (1.0 - 10f64.powf(-x)) * 100.0;
    let digits = (x - 2.0).ceil().clamp(0.0, 4.0) as usize;
    let s = format!("{p:.digits$}");
    format!("{s}%")
}

/// A time in ns as an axis label: ns, µs or ms, no trailing ".0".
pub fn ns_label(ns: f64) -> String {
    let (v, unit) = if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    let text = if v >= 100.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text} {unit}")
}

/// A byte count as an axis label: B, KiB, MiB, GiB.
pub fn bytes_label(b: f64) -> String {
    let (v, unit) = if b >= (1u64 << 30) as f64 {
        (b / (1u64 << 30) as f64, "GiB")
    } else if b >= (1u64 << 20) as f64 {
        (b / (1u64 << 20) as f64, "MiB")
    } else if b >= 1024.0 {
        (b / 1024.0, "KiB")
    } else {
        (b, "B")
    };
    let text = format!("{v:.1}");
    format!(
        "{} {unit}",
        text.trim_end_matches('0').trim_end_matches('.')
    )
}

/// The row's latency at percentiles from 0 to 99.995%: (x, value) with x
/// as [`spectrum_x`], from its histogram (none without one).
fn spectrum_points(m: &Measurement, conv: &dyn Fn(f64) -> f64) -> Vec<(f64, f64)> {
    let Some(h) = m.pooled_histogram().filter(|h| !h.is_empty()) else {
        return Vec::new();
    };
    let (min, max) = (m.summary.min, m.summary.max);
    (0..=(SPECTRUM_MAX_X * 20.0) as u32)
        .map(|i| {
            let x = f64::from(i) / 20.0;
            let p = 1.0 - 10f64.powf(-x);
            let v = h.value_at_quantile(p).clamp(min, max);
            (x, conv(v as f64).max(1e-3))
        })
        .collect()
}

/// Colours for overlaid rows, distinct on white and in grey print.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
];

/// A percentile spectrum: latency (log axis, human units) against
/// percentile on HdrHistogram's 1/(1 − p) axis, one line per series, with
/// p50, p99 and p99.9 marked on each.
///
/// With `by_run`, series i is drawn in run `by_run[i]`'s colour, the legend
/// names each run once, and no percentiles are marked (a comparison).
fn spectrum_svg(
    title: &str,
    unit: &str,
    series: &[(String, Vec<(f64, f64)>)],
    by_run: Option<&[usize]>,
) -> Result<Option<String>, PublishError> {
    let values = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (lo, hi) = values.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // The y axis is log10 of the value on a linear axis: ticks then fall
    // inside narrow ranges too (a log axis labels decades only), each
    // labelled with the value it stands for.
    let Some(range) = log_range(lo * 0.9, (hi * 1.15).max(lo * 1.2)) else {
        return Ok(None);
    };
    let y_range = range.start.log10()..range.end.log10();
    let series: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, p)| (n.clone(), p.iter().map(|(x, y)| (*x, y.log10())).collect()))
        .collect();
    let ns = unit == "ns";
    let labelled = series.len() > 1;
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (760, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .margin_right(if labelled { label_width(&series) } else { 12 })
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..SPECTRUM_MAX_X, y_range)
            .map_err(err)?;
        let y_fmt = move |v: &f64| {
            let v = 10f64.powf(*v);
            if ns { ns_label(v) } else { format!("{v:.0}") }
        };
        c.configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&y_fmt)
            .y_labels(6)
            .x_desc("percentile")
            .y_desc(if ns { "latency" } else { "TSC ticks" })
            .draw()
            .map_err(err)?;
        let mut ends = Vec::new();
        for (i, (name, pts)) in series.iter().enumerate() {
            let key = by_run.map_or(i, |runs| runs.get(i).copied().unwrap_or(i));
            let color = PALETTE[key % PALETTE.len()];
            // A comparison tells a run's rows apart by dash, runs by colour.
            let dashed = by_run.is_some()
                && series[..i]
                    .iter()
                    .zip(by_run.unwrap_or_default())
                    .filter(|(_, run)| **run == key)
                    .count()
                    % 2
                    == 1;
            if dashed {
                c.draw_series(DashedLineSeries::new(
                    pts.iter().copied(),
                    6,
                    4,
                    color.stroke_width(2),
                ))
                .map_err(err)?;
            } else {
                c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                    .map_err(err)?;
            }
            if let Some(last) = pts.last() {
                ends.push((name.clone(), c.backend_coord(last), color));
            }
            if by_run.is_some() {
                continue;
            }
            // p50, p99, p99.9: the nearest points, marked.
            for p in [0.5, 0.99, 0.999] {
                let x = spectrum_x(p);
                if let Some(pt) = pts
                    .iter()
                    .min_by(|a, b| (a.0 - x).abs().total_cmp(&(b.0 - x).abs()))
                {
                    c.draw_series(std::iter::once(Circle::new(*pt, 3, color.filled())))
                        .map_err(err)?;
                }
            }
        }
        if labelled {
            label_line_ends(&root, &c.plotting_area().get_pixel_range(), ends)?;
        }
        root.present().map_err(err)?;
    }
    Ok(Some(s))
}

/// Pixels to the right of the plotting area for the longest line label
/// (about 7 px per character at 12 px sans-serif).
fn label_width(series: &[(String, Vec<(f64, f64)>)]) -> u32 {
    let longest = series
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    (longest as u32 * 7 + 16).clamp(40, 300)
}

/// Names each line at its right end, in its colour, just outside the
/// plotting area (no legend box over the data); labels closer than a line
/// of text are moved apart, and all kept within the area's height.
fn label_line_ends<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    area: &(std::ops::Range<i32>, std::ops::Range<i32>),
    mut ends: Vec<(String, (i32, i32), RGBColor)>,
) -> Result<(), PublishError> {
    const LINE: i32 = 14;
    let x = area.0.end + 6;
    let (top, bottom) = (area.1.start + LINE / 2, area.1.end - LINE / 2);
    ends.sort_by_key(|e| e.1.1);
    let mut ys: Vec<i32> = ends.iter().map(|e| e.1.1.clamp(top, bottom)).collect();
    for i in 1..ys.len() {
        ys[i] = ys[i].max(ys[i - 1] + LINE);
    }
    if let Some(last) = ys.last_mut() {
        *last = (*last).min(bottom);
    }
    for i in (0..ys.len().saturating_sub(1)).rev() {
        ys[i] = ys[i].min(ys[i + 1] - LINE);
    }
    for ((name, _, color), y) in ends.iter().zip(ys) {
        let style = ("sans-serif", 12).into_font().color(color).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            ),
        );
        root.draw(&Text::new(name.clone(), (x, y), style))
            .map_err(err)?;
    }
    Ok(())
}

/// One row's spectrum.
fn row_spectrum_svg(m: &Measurement) -> Result<Option<String>, PublishError> {
    let (unit, conv) = axis(m);
    let pts = spectrum_points(m, &*conv);
    if pts.len() < 2 {
        return Ok(None);
    }
    let title = format!("{} — latency by percentile (N = {})", m.id, m.summary.n);
    spectrum_svg(&title, unit, &[(m.id.to_string(), pts)], None)
}

/// The rows that belong together on one figure: the six round trips with
/// their timer baselines; device notifications to QEMU beside the same ones
/// completed by an ioeventfd; the shm round trips with the cache-line
/// reference.
pub const GROUPS: [(&str, &str, &[&str]); 3] = [
    (
        "vmexit",
        "VM-exit round trips and the timer's own cost",
        &[
            "vmexit.user-fast",
            "vmexit.user-slow",
            "vmexit.user-kernel-fast",
            "vmexit.user-kernel-slow",
            "vmexit.kernel-fast",
            "vmexit.kernel-slow",
            "vmexit.timer-overhead",
            "vmexit.kernel-timer-overhead",
        ],
    ),
    (
        "vmexit-io",
        "MMIO and port I/O from the guest kernel: to QEMU, and completed by an ioeventfd",
        &[
            "vmexit.kernel-mmio-qemu",
            "vmexit.kernel-mmio-ioeventfd",
            "vmexit.kernel-pio-qemu",
            "vmexit.kernel-pio-ioeventfd",
            "vmexit.kernel-timer-overhead",
        ],
    ),
    (
        "shm-rtt",
        "shared-memory round trips and the cache-line reference",
        &["shm.rtt.poll", "shm.rtt.doorbell", "shm.ref.cacheline-rtt"],
    ),
];

/// A group's overlay, from the rows of `r` that it names (in ns only: rows
/// without a TSC frequency are left out of overlays).
fn group_spectrum_svg(
    r: &RunRecord,
    title: &str,
    ids: &[&str],
) -> Result<Option<String>, PublishError> {
    let series: Vec<(String, Vec<(f64, f64)>)> = ids
        .iter()
        .filter_map(|id| r.results.measurements.iter().find(|m| m.id == *id))
        .filter(|m| m.tsc_khz.is_some_and(|k| k > 0.0))
        .map(|m| {
            let (_, conv) = axis(m);
            (m.id.local().to_string(), spectrum_points(m, &*conv))
        })
        .filter(|(_, p)| p.len() >= 2)
        .collect();
    if series.len() < 2 {
        return Ok(None);
    }
    spectrum_svg(title, "ns", &series, None)
}

/// Whether a row's drift series moves: its last tenth's mean differs from
/// its first tenth's by more than 10% of the median (then, and only then,
/// the drift plot is drawn).
pub fn drifts(m: &Measurement) -> bool {
    let Some(d) = m.drift.as_ref().map(|d| &d.means) else {
        return false;
    };
    if d.len() < vmbench_results::stats::DRIFT_MIN_POINTS || m.summary.p50 == 0 {
        return false;
    }
    let tenth = d.len() / 10;
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&d[..tenth]), mean(&d[d.len() - tenth..]));
    (last - first).abs() / m.summary.p50 as f64 > 0.10
}

fn drift_svg(m: &Measurement) -> Result<Option<String>, PublishError> {
    let (unit, conv) = axis(m);
    let Some(drift) = &m.drift else {
        return Ok(None);
    };
    let block = drift.block.max(1) as f64;
    let pts: Vec<(f64, f64)> = drift
        .means
        .iter()
        .enumerate()
        .map(|(i, v)| ((i as f64 + 0.5) * block, conv(*v)))
        .collect();
    let Some(y_range) = linear_range(pts.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1 + 1e-9)
    else {
        return Ok(None);
    };
    let Some(x_range) = linear_range((pts.len() as f64 * block).max(1.0)) else {
        return Ok(None);
    };
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (720, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut c = ChartBuilder::on(&root)
            .caption(
                format!("{} — mean of each {} samples, in order", m.id, drift.block),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range, y_range)
            .map_err(err)?;
        let ns = unit == "ns";
        let y_fmt = move |v: &f64| {
            if ns { ns_label(*v) } else { format!("{v:.0}") }
        };
        c.configure_mesh()
            .x_desc("sample number")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&y_fmt)
            .y_desc(if ns { "mean latency" } else { "TSC ticks" })
            .draw()
            .map_err(err)?;
        c.draw_series(LineSeries::new(pts, &RED)).map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Some(s))
}

/// GB/s at p50 over transfer size: host write and guest cold read from the
/// sweep, with the same-run memcpy reference.
fn bandwidth_svg(r: &RunRecord) -> Result<Option<String>, PublishError> {
    // `Some(kind)`: the sweep's `shm.sweep.<size>.<kind>`; `None`: the
    // sweep's memcpy references (`shm.ref.memcpy.<size>`, sizes end in B;
    // the frames' references end in bpp).
    let series = |kind: Option<&str>| -> Vec<(f64, f64)> {
        r.results
            .measurements
            .iter()
            .filter(|m| {
                if m.id.suite() != Some(Suite::Shm) {
                    return false;
                }
                match (m.id.local_parts().as_slice(), kind) {
                    (["sweep", _, k], Some(kind)) => *k == kind,
                    (["ref", "memcpy", size], None) => size.ends_with('B'),
                    _ => false,
                }
            })
            // A transfer faster than its physical reference times the
            // timer, not the copy: it would set the axis, and is left out.
            .filter(|m| !m.beats_its_reference())
            .filter(|m| !m.times_the_timer())
            .filter_map(|m| Some(((m.bytes? as f64).log2(), m.p50_bytes_per_sec()? / 1e9)))
            .collect()
    };
    let lines = [
        ("host write", series(Some("host-write")), BLUE),
        ("guest cold read", series(Some("guest-read-cold")), RED),
        ("memcpy", series(None), BLACK),
    ];
    if lines[0].1.len() < 2 {
        return Ok(None);
    }
    let (transfers, reference) = lines.split_at(2);
    // One x axis for both panels: every size any series has.
    let xs = lines.iter().flat_map(|l| l.1.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let x_range = (lo - 0.5)..(hi + 0.5);
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (760, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root
            .titled(
                "shared-memory bandwidth over transfer size (p50)",
                ("sans-serif", 18),
            )
            .map_err(err)?;
        // The transfers set their own scale; an in-cache memcpy reaches
        // many times their rate and gets its own panel, so it cannot
        // squash them into the bottom of the plot.
        let (left, right) = root.split_horizontally(500);
        bandwidth_panel(
            &left,
            "through the region",
            transfers,
            x_range.clone(),
            hi - lo,
        )?;
        bandwidth_panel(
            &right,
            "memcpy reference, same run",
            reference,
            x_range,
            hi - lo,
        )?;
        root.present().map_err(err)?;
    }
    Ok(Some(s))
}

/// A line of a figure: its name, its points and its colour.
type NamedLine<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// One panel of the bandwidth figure: GB/s over log2 of the size, each
/// line named at its end.
fn bandwidth_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    lines: &[NamedLine<'_>],
    x_range: std::ops::Range<f64>,
    span: f64,
) -> Result<(), PublishError> {
    let top = lines
        .iter()
        .flat_map(|l| l.1.iter().map(|p| p.1))
        .fold(0f64, f64::max);
    let Some(y_range) = linear_range(top * 1.15 + 1e-9) else {
        return Ok(());
    };
    let names: Vec<(String, Vec<(f64, f64)>)> = lines
        .iter()
        .filter(|l| !l.1.is_empty())
        .map(|l| (l.0.to_string(), Vec::new()))
        .collect();
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 13))
        .margin(8)
        .margin_right(label_width(&names))
        .x_label_area_size(40)
        .y_label_area_size(44)
        .build_cartesian_2d(x_range, y_range)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("bytes per transfer (log scale)")
        .x_labels((span as usize + 2).min(24))
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 && x.round() as i64 % 4 == 0 {
                bytes_label(x.round().exp2())
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| {
            let t = format!("{v:.1}");
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        })
        .y_desc("GB/s")
        .draw()
        .map_err(err)?;
    let mut ends = Vec::new();
    for (name, pts, color) in lines {
        if pts.is_empty() {
            continue;
        }
        c.draw_series(LineSeries::new(pts.clone(), color))
            .map_err(err)?;
        c.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(err)?;
        if let Some(last) = pts.last() {
            ends.push((name.to_string(), c.backend_coord(last), *color));
        }
    }
    label_line_ends(area, &c.plotting_area().get_pixel_range(), ends)
}

/// `vmbench compare`'s figures: for each group of [`GROUPS`], every run's
/// spectra of the group's rows, one colour per run (rows of one run share
/// its colour and are told apart by their level; the legend names runs).
/// Returns (group name, SVG).
pub fn compare_figures(
    runs: &[(&str, &RunRecord)],
) -> Result<Vec<(&'static str, String)>, PublishError> {
    let mut out = Vec::new();
    for (name, title, ids) in GROUPS {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        let mut colours = Vec::new();
        for (i, (label, r)) in runs.iter().enumerate() {
            for id in ids {
                let Some(m) = r
                    .results
                    .measurements
                    .iter()
                    .find(|m| m.id == *id && m.tsc_khz.is_some_and(|k| k > 0.0))
                else {
                    continue;
                };
                let (_, conv) = axis(m);
                let pts = spectrum_points(m, &*conv);
                if pts.len() >= 2 {
                    let row = id.rsplit('.').next().unwrap_or(id);
                    series.push((format!("{label}: {row}"), pts));
                    colours.push(i);
                }
            }
        }
        // Something to compare: rows of at least two runs.
        let mut distinct = colours.clone();
        distinct.dedup();
        if distinct.len() < 2 {
            continue;
        }
        if let Some(svg) = spectrum_svg(&format!("{title}, by run"), "ns", &series, Some(&colours))?
        {
            out.push((name, svg));
        }
    }
    Ok(out)
}
