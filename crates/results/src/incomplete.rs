//! Why a run is incomplete: which part ended early and how, as data; the
//! sentence a reader sees is made when it is shown.

use crate::Suite;
use serde::{Deserialize, Serialize};

/// One part of a run that ended early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Incomplete {
    /// What ended early.
    #[serde(flatten)]
    pub what: Stopped,
    /// The repeat it happened in (absent for a run of one repeat, and for
    /// what ends the run as a whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
}

/// What ended early, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Stopped {
    /// A stop signal (SIGINT, SIGTERM, SIGHUP or SIGQUIT) ended the run.
    Interrupted,
    /// The suite's guest did not come up.
    GuestDidNotBoot {
        /// The suite.
        suite: Suite,
        /// The error.
        cause: String,
    },
    /// The suite stopped part-way.
    SuiteStopped {
        /// The suite.
        suite: Suite,
        /// The error.
        cause: String,
    },
    /// The shared-memory suite's UC and WC arms stopped part-way.
    MemoryTypeArmsStopped {
        /// The error.
        cause: String,
    },
    /// The suite did not run: the run had stopped before it.
    NotRun {
        /// The suite.
        suite: Suite,
    },
    /// Said as text by a version that had no kinds (results.json before
    /// version 3).
    Unclassified {
        /// The text it wrote.
        text: String,
    },
}

impl Incomplete {
    /// `what`, in no particular repeat.
    pub fn new(what: Stopped) -> Incomplete {
        Incomplete { what, repeat: None }
    }
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(n) = self.repeat {
            write!(f, "repeat {n}: ")?;
        }
        match &self.what {
            Stopped::Interrupted => f.write_str(
                "interrupted by a stop signal (SIGINT, SIGTERM, SIGHUP or SIGQUIT): the run stopped early",
            ),
            Stopped::GuestDidNotBoot { suite, cause } => {
                write!(f, "{} suite: the guest did not come up: {cause}", suite.name())
            }
            Stopped::SuiteStopped { suite, cause } => {
                write!(f, "the {} stopped: {cause}", suite.title())
            }
            Stopped::MemoryTypeArmsStopped { cause } => {
                write!(f, "the shm UC/WC arms stopped: {cause}")
            }
            Stopped::NotRun { suite } => write!(
                f,
                "suite {} did not run (the run stopped before it)",
                suite.name()
            ),
            Stopped::Unclassified { text } => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_data_in_json_and_a_sentence_for_a_reader() {
        let stopped = Incomplete {
            what: Stopped::SuiteStopped {
                suite: Suite::Shm,
                cause: "timeout".into(),
            },
            repeat: Some(2),
        };
        let json = serde_json::to_string(&stopped).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"suite-stopped","suite":"shm","cause":"timeout","repeat":2}"#
        );
        assert_eq!(serde_json::from_str::<Incomplete>(&json).unwrap(), stopped);
        assert_eq!(
            stopped.to_string(),
            "repeat 2: the shared-memory suite stopped: timeout"
        );
        let not_run = Incomplete::new(Stopped::NotRun {
            suite: Suite::Vmexit,
        });
        assert_eq!(
            serde_json::to_string(&not_run).unwrap(),
            r#"{"kind":"not-run","suite":"vmexit"}"#
        );
    }
}
