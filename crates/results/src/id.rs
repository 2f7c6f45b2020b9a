//! What a measurement is called: its suite, and its id within the suite.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A suite of measurements.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Suite {
    /// VM-exit round trips.
    Vmexit,
    /// Host-guest shared memory over ivshmem.
    Shm,
}

impl Suite {
    /// Every suite, in the order a run takes them.
    pub const ALL: [Suite; 2] = [Suite::Vmexit, Suite::Shm];

    /// The suite's id in configs, reports, measurement ids and on the
    /// command line.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Vmexit => "vmexit",
            Suite::Shm => "shm",
        }
    }

    /// How progress and reports title it.
    pub fn title(self) -> &'static str {
        match self {
            Suite::Vmexit => "VM-exit suite",
            Suite::Shm => "shared-memory suite",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A measurement's stable id: its suite's name, a dot, and dot-separated
/// parts within the suite (`vmexit.user-fast`, `shm.h2g.4k-32bpp.host-write`,
/// `shm.wc.rtt.poll`). In JSON it is that string.
///
/// There is no `Deref` to `str` on purpose: code that wants the suite asks
/// [`MeasurementId::suite`] or [`MeasurementId::within`] instead of matching
/// prefixes.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct MeasurementId(String);

impl MeasurementId {
    /// `<suite>.<local>`.
    pub fn new(suite: Suite, local: &str) -> MeasurementId {
        MeasurementId(format!("{}.{local}", suite.name()))
    }

    /// The suite the id belongs to (none for an id from elsewhere).
    pub fn suite(&self) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| self.within(*s).is_some())
    }

    /// The id within `suite` (`user-fast` for `vmexit.user-fast`), if the id
    /// belongs to it.
    pub fn within(&self, suite: Suite) -> Option<&str> {
        self.0
            .strip_prefix(suite.name())
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|local| !local.is_empty())
    }

    /// The id within its suite (`user-fast` for `vmexit.user-fast`), or the
    /// whole id when it belongs to no suite.
    pub fn local(&self) -> &str {
        self.suite().and_then(|s| self.within(s)).unwrap_or(&self.0)
    }

    /// The dot-separated parts after the suite's name (none for an id that
    /// belongs to no suite).
    pub fn local_parts(&self) -> Vec<&str> {
        self.suite()
            .and_then(|s| self.within(s))
            .map(|local| local.split('.').collect())
            .unwrap_or_default()
    }

    /// Whether the id can name a file as it is: ASCII letters, digits, `.`,
    /// `-` and `_`, no `..`, not starting with a dot.
    pub fn is_file_name_safe(&self) -> bool {
        !self.0.is_empty()
            && !self.0.starts_with('.')
            && !self.0.contains("..")
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    }

    /// The whole id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MeasurementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl From<&str> for MeasurementId {
    fn from(id: &str) -> MeasurementId {
        MeasurementId(id.to_string())
    }
}

impl From<String> for MeasurementId {
    fn from(id: String) -> MeasurementId {
        MeasurementId(id)
    }
}

impl PartialEq<str> for MeasurementId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for MeasurementId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_and_local_id() {
        let id = MeasurementId::new(Suite::Vmexit, "user-fast");
        assert_eq!(id, "vmexit.user-fast");
        assert_eq!(id.suite(), Some(Suite::Vmexit));
        assert_eq!(id.within(Suite::Vmexit), Some("user-fast"));
        assert_eq!(id.within(Suite::Shm), None);
        let shm = MeasurementId::from("shm.wc.rtt.poll");
        assert_eq!(shm.suite(), Some(Suite::Shm));
        assert_eq!(shm.local_parts(), ["wc", "rtt", "poll"]);
        assert_eq!(shm.local(), "wc.rtt.poll");
        assert_eq!(MeasurementId::from("other.x").local(), "other.x");
        assert_eq!(
            format!("[{:<10}]", MeasurementId::from("shm.a")),
            "[shm.a     ]"
        );
        // A prefix is not a suite: the name must end at a dot.
        for other in ["shmoo.x", "vmexit", "vmexit.", "other.rtt"] {
            assert_eq!(MeasurementId::from(other).suite(), None, "{other}");
        }
        assert!(id.is_file_name_safe() && shm.is_file_name_safe());
        for hostile in ["vmexit/../../etc", "shm..x", ".hidden", "", "vmexit.a b"] {
            assert!(
                !MeasurementId::from(hostile).is_file_name_safe(),
                "{hostile}"
            );
        }
        assert_eq!(serde_json::to_string(&shm).unwrap(), "\"shm.wc.rtt.poll\"");
        assert_eq!(
            serde_json::from_str::<MeasurementId>("\"vmexit.kernel-fast\"").unwrap(),
            MeasurementId::new(Suite::Vmexit, "kernel-fast")
        );
    }
}
