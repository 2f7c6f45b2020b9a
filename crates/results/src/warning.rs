//! Warnings: what a reader must know before trusting a figure. Each has a
//! kind from a closed list, which is what code decides on (grouping in the
//! report, "this transfer is not a bandwidth"), and a message for the
//! reader, written where the facts it cites are known.

use serde::{Deserialize, Serialize};

/// What a warning is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// Every guest ran under TCG: no figure is a VM exit.
    Tcg,
    /// Some guests ran under TCG: their suites' figures are emulation costs.
    PartlyTcg,
    /// What the accelerator choice means (other than TCG's notice).
    Accelerator,
    /// The host itself runs under a hypervisor: every exit is nested.
    NestedHost,
    /// The host is a guest of QEMU's TCG, whose SVM differs from hardware.
    TcgHostedKvm,
    /// RDTSC exits in the guest: timestamps are exits too.
    RdtscExits,
    /// KVM emulates the guest's ring 0 instruction by instruction.
    Ring0Emulated,
    /// Samples far above the median (interrupts, preemption).
    Outliers,
    /// External-interrupt exits happened during the row.
    InterruptExits,
    /// Samples below the timer baseline were floored at 0 when it was subtracted.
    OverheadFloored,
    /// The timed window is within 3× the timer's own cost.
    TimerDominates,
    /// A transfer beat its physical reference: its figure is not a bandwidth.
    FasterThanReference,
    /// Timed on the guest's TSC.
    GuestClock,
    /// The guest's and the host's TSC frequencies disagree.
    TscMismatch,
    /// No hardware counters (cycles, IPC, caches) on a side.
    NoHardwareCounters,
    /// The memory type the guest kernel records differs from the mapper's.
    MappingMismatch,
    /// What the page attribute table (PAT) does to the UC/WC arms here.
    MemoryTypeArms,
    /// The host changed during a suite (frequency, throttling, noise).
    HostChanged,
    /// The repeats of a row differ by more than the flag threshold.
    RepeatSpread,
    /// A repeat's histogram is missing: the distribution is one repeat's.
    HistogramMissing,
    /// The host was not fully restored.
    HostNotRestored,
    /// Written by a vmbench before warnings had kinds (results.json
    /// schema_version 1).
    Unclassified,
}

/// How much a warning changes what the figures mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A figure may not mean what its label says, or the host was left
    /// changed: read before quoting a number.
    Caution,
    /// How a figure was taken, or what this host lacks: worth knowing,
    /// changes no figure.
    Note,
}

impl WarningKind {
    /// How much warnings of this kind matter to a reader of the figures.
    pub fn severity(self) -> Severity {
        match self {
            WarningKind::PartlyTcg
            | WarningKind::NestedHost
            | WarningKind::TcgHostedKvm
            | WarningKind::RdtscExits
            | WarningKind::Ring0Emulated
            | WarningKind::InterruptExits
            | WarningKind::FasterThanReference
            | WarningKind::TscMismatch
            | WarningKind::MappingMismatch
            | WarningKind::HostChanged
            | WarningKind::RepeatSpread
            | WarningKind::HistogramMissing
            | WarningKind::HostNotRestored
            | WarningKind::Unclassified => Severity::Caution,
            WarningKind::Tcg
            | WarningKind::Accelerator
            | WarningKind::Outliers
            | WarningKind::OverheadFloored
            | WarningKind::TimerDominates
            | WarningKind::GuestClock
            | WarningKind::NoHardwareCounters
            | WarningKind::MemoryTypeArms => Severity::Note,
        }
    }

    /// What warnings of this kind are about, for a table that groups them.
    pub fn label(self) -> &'static str {
        match self {
            WarningKind::Tcg => "TCG: no VM exits",
            WarningKind::PartlyTcg => "some suites under TCG",
            WarningKind::Accelerator => "the accelerator",
            WarningKind::NestedHost => "the host is itself a guest: nested exits",
            WarningKind::TcgHostedKvm => "KVM nested in QEMU's TCG",
            WarningKind::RdtscExits => "RDTSC exits: timestamps are exits too",
            WarningKind::Ring0Emulated => "KVM emulates ring 0",
            WarningKind::Outliers => "samples far above the median",
            WarningKind::InterruptExits => "external-interrupt exits during the row",
            WarningKind::OverheadFloored => "samples below the timer baseline, floored at 0",
            WarningKind::TimerDominates => "the window is within 3× the timer's cost",
            WarningKind::FasterThanReference => {
                "faster than its physical reference: not a bandwidth"
            }
            WarningKind::GuestClock => "timed on the guest's TSC",
            WarningKind::TscMismatch => "guest and host TSC frequencies differ",
            WarningKind::NoHardwareCounters => "no hardware counters",
            WarningKind::MappingMismatch => "the mapping's memory type is not the one asked for",
            WarningKind::MemoryTypeArms => "what the PAT does to the UC/WC arms",
            WarningKind::HostChanged => "the host changed during a suite",
            WarningKind::RepeatSpread => "run-to-run spread above the flag",
            WarningKind::HistogramMissing => "a repeat's histogram is missing",
            WarningKind::HostNotRestored => "the host was not fully restored",
            WarningKind::Unclassified => "other (written before warnings had kinds)",
        }
    }
}

/// One warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Warning {
    /// What it is about.
    pub kind: WarningKind,
    /// What it says.
    pub message: String,
    /// The repeats it concerns when not every repeat of the run (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repeats: Vec<u32>,
}

impl Warning {
    /// A warning about every repeat.
    pub fn new(kind: WarningKind, message: impl Into<String>) -> Self {
        Warning {
            kind,
            message: message.into(),
            repeats: Vec::new(),
        }
    }

    /// Whether it says the same as `other` (the repeats aside).
    pub fn same_as(&self, other: &Warning) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.repeats.as_slice() {
            [] => f.write_str(&self.message),
            [one] => write!(f, "repeat {one}: {}", self.message),
            many => {
                let list: Vec<String> = many.iter().map(u32::to_string).collect();
                write!(f, "repeats {}: {}", list.join(", "), self.message)
            }
        }
    }
}

/// Adds `w` unless an equal warning is there; a warning of other repeats
/// that says the same gains `w`'s repeats.
pub fn add(list: &mut Vec<Warning>, w: Warning) {
    match list.iter_mut().find(|x| x.same_as(&w)) {
        Some(x) if x.repeats.is_empty() => {}
        Some(x) if w.repeats.is_empty() => x.repeats.clear(),
        Some(x) => {
            for r in w.repeats {
                if !x.repeats.contains(&r) {
                    x.repeats.push(r);
                }
            }
            x.repeats.sort_unstable();
        }
        None => list.push(w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_warning_of_two_repeats_is_one_naming_both() {
        let mut list = Vec::new();
        let w = |r: Vec<u32>| Warning {
            repeats: r,
            ..Warning::new(WarningKind::Outliers, "3 of 2000 samples")
        };
        add(&mut list, w(vec![3]));
        add(&mut list, w(vec![2]));
        add(&mut list, w(vec![3]));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].to_string(), "repeats 2, 3: 3 of 2000 samples");
        add(&mut list, w(vec![]));
        assert_eq!(list[0].to_string(), "3 of 2000 samples");
        add(
            &mut list,
            Warning::new(WarningKind::Outliers, "7 of 2000 samples"),
        );
        assert_eq!(list.len(), 2);
    }
}
