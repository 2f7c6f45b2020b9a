//! `/proc/cpuinfo` (x86 layout).

use std::collections::BTreeMap;

/// One `processor : N` block of /proc/cpuinfo as key → value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuInfoBlock(pub BTreeMap<String, String>);

impl CpuInfoBlock {
    /// The value of `key`, if the block has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The `flags` line, split into words.
    pub fn flags(&self) -> Vec<&str> {
        self.get("flags")
            .map(|f| f.split_whitespace().collect())
            .unwrap_or_default()
    }

    /// Whether `flags` lists `flag`.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags().contains(&flag)
    }
}

/// The CPU vendor string (`vendor_id` of the first processor in
/// /proc/cpuinfo under `root`), e.g. `GenuineIntel`.
pub fn vendor(root: &crate::SysRoot) -> Option<String> {
    let text = root.read("/proc/cpuinfo").ok()?;
    parse(&text)
        .first()
        .and_then(|b| b.get("vendor_id"))
        .map(str::to_string)
}

/// Splits /proc/cpuinfo into per-processor blocks. Lines without a colon are skipped.
pub fn parse(text: &str) -> Vec<CpuInfoBlock> {
    let mut blocks = Vec::new();
    let mut cur = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                blocks.push(CpuInfoBlock(std::mem::take(&mut cur)));
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    if !cur.is_empty() {
        blocks.push(CpuInfoBlock(cur));
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_blocks_and_reads_flags() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx constant_tsc\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n\n";
        let b = parse(text);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].get("vendor_id"), Some("GenuineIntel"));
        assert!(b[0].has_flag("vmx"));
        assert!(!b[0].has_flag("svm"));
        assert!(!b[1].has_flag("vmx"));
    }
}
