//! One CSV per suite: a summary line per measurement, every figure as in
//! results.json (ticks; ns and GB/s derived with the recorded TSC frequency).

use crate::PublishError;
use std::path::Path;
use vmbench_host::files::OutputDir;
use vmbench_results::{Measurement, RunRecord, Suite};

/// The CSV columns, one measurement per line.
pub const HEADER: &str = "id,unit,n,min,p50,p90,p99,p999,max,mean,stddev,p50_ns,p50_minus_overhead,overhead_p50,batch_mean,bytes,p50_gb_per_s,tsc_khz,verdict,accel,guest";

/// Where a CSV's measurements ran: every line says it, so that a line
/// copied out of its file still says whether it is a KVM figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting<'a> {
    /// `kvm`, `tcg`, or `none` (two host processes, no VM).
    pub accel: &'a str,
    /// `linux`, `micro`, or what played the guest end.
    pub guest: &'a str,
}

/// One measurement as a CSV line (no newline), in [`HEADER`]'s columns.
pub fn line(m: &Measurement, setting: Setting<'_>) -> String {
    let s = &m.summary;
    let unit = serde_json::to_value(m.unit)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let opt = |v: Option<String>| v.unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{},{},{},{:.3},{:.3},{},{},{},{},{},{},{},{},{},{}",
        m.id,
        unit,
        s.n,
        s.min,
        s.p50,
        s.p90,
        s.p99,
        s.p999,
        s.max,
        s.mean,
        s.stddev,
        opt(m.p50_ns().map(|v| format!("{v:.1}"))),
        opt(m.overhead_subtracted.as_ref().map(|o| o.p50.to_string())),
        opt(m.overhead_p50.map(|v| v.to_string())),
        opt(m.batch_mean.map(|v| format!("{v:.3}"))),
        opt(m.bytes.map(|v| v.to_string())),
        opt(m.p50_bytes_per_sec().map(|v| format!("{:.3}", v / 1e9))),
        opt(m.tsc_khz.map(|v| format!("{v:.3}"))),
        m.path_label(),
        field(setting.accel),
        field(setting.guest),
    )
}

/// A free-text field: commas and quotes would break the columns.
fn field(text: &str) -> String {
    text.replace([',', '"'], " ")
}

/// [`HEADER`] and one line per measurement.
pub fn render(ms: &[&Measurement], setting: Setting<'_>) -> String {
    let mut text = format!("{HEADER}\n");
    for m in ms {
        text.push_str(&line(m, setting));
        text.push('\n');
    }
    text
}

/// Writes [`render`] to `path` (a file the user named: a link planted
/// there is replaced, not written through).
pub fn write(path: &Path, ms: &[&Measurement], setting: Setting<'_>) -> Result<(), PublishError> {
    Ok(vmbench_host::files::write_named(
        path,
        render(ms, setting).as_bytes(),
    )?)
}

/// `vmexit.csv` and `shm.csv`, for the suites that have measurements.
pub fn write_all(r: &RunRecord, dir: &OutputDir) -> Result<(), PublishError> {
    for suite in Suite::ALL {
        let ms: Vec<&Measurement> = r
            .results
            .measurements
            .iter()
            .filter(|m| m.id.suite() == Some(suite))
            .collect();
        if ms.is_empty() {
            continue;
        }
        // The suite's guest; a record from before `guests` has one for all.
        let guest = r.guest_of(suite);
        let accel = guest.map_or_else(|| r.accel_label(), |g| g.accel.name().to_string());
        let kind = guest.map_or_else(|| r.guest_flavour.clone(), |g| g.kind.to_string());
        let setting = Setting {
            accel: &accel,
            guest: &kind,
        };
        dir.write(&format!("{suite}.csv"), render(&ms, setting).as_bytes())?;
    }
    Ok(())
}
