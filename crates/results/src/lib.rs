//! Results model and statistics shared by every vmbench suite.
//!
//! A suite records raw samples into a [`SampleSet`] and turns it into a
//! [`Measurement`]: what was measured (and exactly what sits inside the timed
//! window), the distribution, and whether the path the measurement took was
//! verified. The report renderers read nothing else.

pub mod context;
pub mod float;
pub mod id;
pub mod incomplete;
pub mod inference;
pub mod knob;
pub mod model;
pub mod repeats;
pub mod stats;
pub mod warning;

pub use context::{CpuFrequency, CpuNoise, NoiseCause, SuiteContext, Temperature, ThrottleDelta};
pub use id::{MeasurementId, Suite};
pub use incomplete::{Incomplete, Stopped};
pub use knob::{KnobClass, KnobId, RestoreState, Verdict};
pub use model::{
    Check, CheckKind, ExitEvents, Measurement, RESULTS_SCHEMA_VERSION, Results, Skipped, Unit,
    Unverifiable, Verification,
};
pub mod record;
pub use record::{
    Accel, BuildRecord, GuestKind, GuestRecord, KnobRecord, PinnedVcpu, Pinning, QemuRecord,
    RUN_SCHEMA_VERSION, RunRecord, SpecRow, results_json_schema, suite_names,
};
pub use repeats::Repeats;
pub use stats::{Drift, SampleSet, StatsError, Summary};
pub use warning::{Severity, Warning, WarningKind};
