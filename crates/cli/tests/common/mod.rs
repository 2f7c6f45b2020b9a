//! Helpers shared by the integration tests that boot guests.
#![allow(dead_code, clippy::unwrap_used)]

/// Processes whose command line mentions `needle` (QEMU gets our run dir and
/// shm path in its arguments): what a test checks is left behind.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&c).contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

/// A measurement's row id without the `vmexit.` prefix.
pub fn id_of(m: &serde_json::Value) -> String {
    m["id"]
        .as_str()
        .unwrap()
        .trim_start_matches("vmexit.")
        .to_string()
}
