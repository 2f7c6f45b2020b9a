//! The kernel's CPU list (`0-3,8,10-11`) and hex mask (`ff,00000000`) formats.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A set of CPU numbers. Parses and prints the kernel's cpulist format
/// (`Documentation/admin-guide/cpu-isolation.rst`), including strides (`0-7:2/4`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuList(BTreeSet<u32>);

/// Text that is not a CPU list or mask.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuListError {
    /// Not a CPU list (`0-3,8`).
    #[error("bad CPU list {input:?}: {why} (expected e.g. \"2\", \"2-3\" or \"1,4-7\")")]
    Syntax {
        /// The text given.
        input: String,
        /// What is wrong with it.
        why: String,
    },
    /// Not a CPU mask (`ff,00000000`).
    #[error("bad CPU mask {input:?}: {why} (expected hex groups such as \"ff\" or \"1,00000000\")")]
    Mask {
        /// The text given.
        input: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Upper bound on CPU numbers accepted from text, so that `0-4000000000` cannot
/// allocate gigabytes. Linux's NR_CPUS maximum is 8192.
pub const MAX_CPU: u32 = 8191;

impl CpuList {
    /// No CPUs.
    pub fn new() -> Self {
        CpuList(BTreeSet::new())
    }

    /// Exactly these CPUs.
    pub fn from_cpus(cpus: impl IntoIterator<Item = u32>) -> Self {
        CpuList(cpus.into_iter().collect())
    }

    /// Parses a cpulist. The empty string and the kernel's `(null)` are empty sets.
    pub fn parse(input: &str) -> Result<Self, CpuListError> {
        let s = input.trim();
        let mut set = BTreeSet::new();
        if s.is_empty() || s == "(null)" {
            return Ok(CpuList(set));
        }
        let err = |why: &str| CpuListError::Syntax {
            input: input.to_string(),
            why: why.to_string(),
        };
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(err("empty element between commas"));
            }
            let (range, stride) = match part.split_once(':') {
                Some((r, g)) => (r, Some(g)),
                None => (part, None),
            };
            let (lo, hi) = match range.split_once('-') {
                Some((a, b)) => (parse_cpu(a, &err)?, parse_cpu(b, &err)?),
                None => {
                    if stride.is_some() {
                        return Err(err("a stride needs a range"));
                    }
                    let c = parse_cpu(range, &err)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(err(&format!("range {lo}-{hi} runs backwards")));
            }
            let (used, group) = match stride {
                None => (1, 1),
                Some(g) => {
                    let (u, gs) = g
                        .split_once('/')
                        .ok_or_else(|| err("stride must be used/group"))?;
                    let u: u32 = u.parse().map_err(|_| err("stride is not a number"))?;
                    let gs: u32 = gs.parse().map_err(|_| err("stride is not a number"))?;
                    if u == 0 || gs == 0 || u > gs {
                        return Err(err("stride must satisfy 0 < used <= group"));
                    }
                    (u, gs)
                }
            };
            let mut base = lo;
            while base <= hi {
                for c in base..base.saturating_add(used) {
                    if c <= hi {
                        set.insert(c);
                    }
                }
                base = match base.checked_add(group) {
                    Some(b) => b,
                    None => break,
                };
            }
        }
        Ok(CpuList(set))
    }

    /// Parses a kernel hex mask (`/proc/irq/N/smp_affinity`): comma-separated
    /// 32-bit groups, most significant first.
    pub fn parse_mask(input: &str) -> Result<Self, CpuListError> {
        let s = input.trim();
        let err = |why: &str| CpuListError::Mask {
            input: input.to_string(),
            why: why.to_string(),
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        let groups: Vec<&str> = s.split(',').collect();
        if groups.len() as u32 * 32 > MAX_CPU + 1 {
            return Err(err("more groups than CPUs Linux supports"));
        }
        let mut set = BTreeSet::new();
        for (i, g) in groups.iter().rev().enumerate() {
            if g.is_empty() || g.len() > 8 {
                return Err(err("each group is 1 to 8 hex digits"));
            }
            let bits = u32::from_str_radix(g, 16).map_err(|_| err("not hexadecimal"))?;
            for b in 0..32 {
                if bits & (1 << b) != 0 {
                    set.insert(i as u32 * 32 + b);
                }
            }
        }
        Ok(CpuList(set))
    }

    /// The kernel's hex mask form, with as many 32-bit groups as `width_cpus` needs
    /// (at least one), e.g. `3` or `00000000,00000003`.
    pub fn to_mask(&self, width_cpus: u32) -> String {
        let top = self.0.iter().next_back().map_or(0, |c| c + 1);
        let groups = width_cpus.max(top).max(1).div_ceil(32);
        let mut out = Vec::new();
        for g in (0..groups).rev() {
            let mut bits: u32 = 0;
            for b in 0..32 {
                if self.0.contains(&(g * 32 + b)) {
                    bits |= 1 << b;
                }
            }
            if g == groups - 1 {
                out.push(format!("{bits:x}"));
            } else {
                out.push(format!("{bits:08x}"));
            }
        }
        out.join(",")
    }

    /// Whether `cpu` is in the list.
    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }
    /// Whether the list has no CPU.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Number of CPUs.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// The CPUs, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }
    /// The lowest CPU.
    pub fn first(&self) -> Option<u32> {
        self.0.first().copied()
    }
    /// Adds `cpu`.
    pub fn insert(&mut self, cpu: u32) {
        self.0.insert(cpu);
    }
    /// CPUs in either list.
    pub fn union(&self, other: &CpuList) -> CpuList {
        CpuList(self.0.union(&other.0).copied().collect())
    }
    /// CPUs in both lists.
    pub fn intersection(&self, other: &CpuList) -> CpuList {
        CpuList(self.0.intersection(&other.0).copied().collect())
    }
    /// CPUs in this list and not in `other`.
    pub fn difference(&self, other: &CpuList) -> CpuList {
        CpuList(self.0.difference(&other.0).copied().collect())
    }
    /// Whether every CPU of this list is in `other`.
    pub fn is_subset(&self, other: &CpuList) -> bool {
        self.0.is_subset(&other.0)
    }
}

fn parse_cpu(s: &str, err: &dyn Fn(&str) -> CpuListError) -> Result<u32, CpuListError> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(&format!("{s:?} is not a CPU number")));
    }
    let n: u32 = s.parse().map_err(|_| err(&format!("{s:?} is too large")))?;
    if n > MAX_CPU {
        return Err(err(&format!(
            "CPU {n} is above Linux's maximum of {MAX_CPU}"
        )));
    }
    Ok(n)
}

/// Compact form: `0-3,8,10-11`; the empty set prints as the empty string.
impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut iter = self.0.iter().copied().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end += 1;
                iter.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for CpuList {
    type Err = CpuListError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CpuList::parse(s)
    }
}

impl Serialize for CpuList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CpuList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CpuList::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for CpuList {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CpuList".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A CPU list in the kernel's form (`0-3,8,10-11`)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Vec<u32> {
        CpuList::parse(s).unwrap().iter().collect()
    }

    #[test]
    fn parses_kernel_forms() {
        assert_eq!(l("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(l(" 2 \n"), vec![2]);
        assert_eq!(l(""), Vec::<u32>::new());
        assert_eq!(l("(null)"), Vec::<u32>::new());
        assert_eq!(l("0-7:2/4"), vec![0, 1, 4, 5]);
    }

    #[test]
    fn rejects_malformed_lists() {
        for bad in [
            "1-",
            "a",
            "3-1",
            "1,,2",
            "-1",
            "1-2:0/4",
            "9999999999",
            "9000",
            "2:1/2",
        ] {
            assert!(CpuList::parse(bad).is_err(), "{bad} accepted");
        }
        let msg = CpuList::parse("3-1").unwrap_err().to_string();
        assert!(msg.contains("backwards"), "{msg}");
    }

    #[test]
    fn prints_compactly_and_round_trips() {
        let c = CpuList::from_cpus([0, 1, 2, 5, 7, 8]);
        assert_eq!(c.to_string(), "0-2,5,7-8");
        assert_eq!(CpuList::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn hex_masks_both_ways() {
        assert_eq!(
            CpuList::parse_mask("3").unwrap(),
            CpuList::from_cpus([0, 1])
        );
        assert_eq!(
            CpuList::parse_mask("1,00000001").unwrap(),
            CpuList::from_cpus([0, 32])
        );
        assert_eq!(CpuList::from_cpus([0, 1]).to_mask(2), "3");
        assert_eq!(CpuList::from_cpus([0, 32]).to_mask(2), "1,00000001");
        assert_eq!(CpuList::from_cpus([1]).to_mask(64), "0,00000002");
        assert!(CpuList::parse_mask("xyz").is_err());
        assert!(CpuList::parse_mask("").is_err());
    }
}
