//! SVG plots rendered from the results alone: a CDF and a drift series per
//! latency measurement, and the shm bandwidth curve over transfer sizes.

use crate::PublishError;
use plotters::prelude::*;
use vmbench_host::files::OutputDir;
use vmbench_results::{Measurement, RunRecord, Suite};

/// Which plot files exist, by measurement (relative paths for links).
#[derive(Debug, Default, Clone)]
pub struct PlotIndex {
    entries: Vec<(String, &'static str, String)>,
    bandwidth: Option<String>,
}

impl PlotIndex {
    /// The plots of measurement `id`: (kind, relative path), kind being `CDF` or `drift`.
    pub fn for_measurement(&self, id: &str) -> Vec<(&'static str, &str)> {
        self.entries
            .iter()
            .filter(|(m, _, _)| m == id)
            .map(|(_, k, f)| (*k, f.as_str()))
            .collect()
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
            .chain(self.bandwidth.as_deref())
            .collect()
    }
}

/// Latency measurements get a CDF and a drift plot; transfers are shown
/// by the bandwidth curve instead.
/// Only ids that are safe as file names get plots (results.json may come
/// from anyone).
fn wants_latency_plots(m: &Measurement) -> bool {
    let latency = match m.id.suite() {
        Some(Suite::Vmexit) => true,
        Some(Suite::Shm) => matches!(
            m.id.local_parts().as_slice(),
            ["rtt", _] | ["ref", "cacheline-rtt"]
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
        if m.summary.cdf.len() >= 2
            && let Some(svg) = cdf_svg(m)?
        {
            let name = format!("{}.cdf.svg", m.id);
            plots.write(&name, svg.as_bytes())?;
            idx.entries
                .push((m.id.to_string(), "CDF", format!("plots/{name}")));
        }
        if m.summary.drift.len() >= 8
            && let Some(svg) = drift_svg(m)?
        {
            let name = format!("{}.drift.svg", m.id);
            plots.write(&name, svg.as_bytes())?;
            idx.entries
                .push((m.id.to_string(), "drift", format!("plots/{name}")));
        }
    }
    if let Some(svg) = bandwidth_svg(r)? {
        plots.write("shm-bandwidth.svg", svg.as_bytes())?;
        idx.bandwidth = Some("plots/shm-bandwidth.svg".to_string());
    }
    Ok(idx)
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

fn cdf_svg(m: &Measurement) -> Result<Option<String>, PublishError> {
    let (unit, conv) = axis(m);
    let pts: Vec<(f64, f64)> = m
        .summary
        .cdf
        .iter()
        .map(|(q, v)| (conv(*v as f64).max(1e-3), *q))
        .collect();
    let lo = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().map(|p| p.0).fold(0.0, f64::max);
    let Some(x_range) = log_range(lo * 0.9, (hi * 1.1).max(lo * 1.2)) else {
        return Ok(None);
    };
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut c = ChartBuilder::on(&root)
            .caption(
                format!("{} — CDF (N = {})", m.id, m.summary.n),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x_range.log_scale(), 0f64..1f64)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc(format!("{unit} (log scale)"))
            .y_desc("fraction of samples ≤ x")
            .draw()
            .map_err(err)?;
        c.draw_series(LineSeries::new(pts.iter().copied(), &BLUE))
            .map_err(err)?;
        c.draw_series(pts.iter().map(|p| Circle::new(*p, 2, BLUE.filled())))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Some(s))
}

fn drift_svg(m: &Measurement) -> Result<Option<String>, PublishError> {
    let (unit, conv) = axis(m);
    let block = m.summary.drift_block.max(1) as f64;
    let pts: Vec<(f64, f64)> = m
        .summary
        .drift
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
                format!(
                    "{} — mean of each {} samples, in order",
                    m.id, m.summary.drift_block
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range, y_range)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("sample number")
            .y_desc(unit)
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
            .filter_map(|m| Some((m.bytes? as f64, m.p50_bytes_per_sec()? / 1e9)))
            .collect()
    };
    let lines = [
        (
            "host write into the region",
            series(Some("host-write")),
            BLUE,
        ),
        ("guest cold read", series(Some("guest-read-cold")), RED),
        ("memcpy (physical reference)", series(None), BLACK),
    ];
    if lines[0].1.len() < 2 {
        return Ok(None);
    }
    let all = lines.iter().flat_map(|l| l.1.iter());
    let (mut lo, mut hi, mut top) = (f64::INFINITY, 0f64, 0f64);
    for (x, y) in all {
        lo = lo.min(*x);
        hi = hi.max(*x);
        top = top.max(*y);
    }
    let (Some(x_range), Some(y_range)) = (
        log_range(lo * 0.8, hi * 1.25),
        linear_range(top * 1.15 + 1e-9),
    ) else {
        return Ok(None);
    };
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (760, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut c = ChartBuilder::on(&root)
            .caption(
                "shared-memory bandwidth over transfer size (p50)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x_range.log_scale(), y_range)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("bytes per transfer (log scale)")
            .y_desc("GB/s")
            .draw()
            .map_err(err)?;
        for (name, pts, color) in lines {
            if pts.is_empty() {
                continue;
            }
            c.draw_series(LineSeries::new(pts.clone(), &color))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            c.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Some(s))
}
