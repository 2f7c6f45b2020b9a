//! A value that was either read from the machine or could not be, with the reason.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One fact about the machine. Never guessed: when it could not be read, the
/// reason is kept and shown to the reader as `unknown (reason)`.
///
/// JSON form: the plain value when known, `{"unknown": "reason"}` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Fact<T> {
    /// The value.
    Known(T),
    /// Not known, with why.
    Unknown {
        /// Why the value could not be learned.
        unknown: String,
    },
}

impl<T> Fact<T> {
    /// Not known, because `reason`.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Fact::Unknown {
            unknown: reason.into(),
        }
    }

    /// The value, if known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Fact::Known(v) => Some(v),
            Fact::Unknown { .. } => None,
        }
    }

    /// The value, if known (consuming the fact).
    pub fn into_known(self) -> Option<T> {
        match self {
            Fact::Known(v) => Some(v),
            Fact::Unknown { .. } => None,
        }
    }

    /// Why the value is not known, if it is not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Fact::Known(_) => None,
            Fact::Unknown { unknown } => Some(unknown),
        }
    }

    /// Applies `f` to a known value; an unknown one keeps its reason.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Fact<U> {
        match self {
            Fact::Known(v) => Fact::Known(f(v)),
            Fact::Unknown { unknown } => Fact::Unknown { unknown },
        }
    }

    /// Chains a second step that may itself fail with a reason.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Fact<U>) -> Fact<U> {
        match self {
            Fact::Known(v) => f(v),
            Fact::Unknown { unknown } => Fact::Unknown { unknown },
        }
    }

    /// Borrows the value.
    pub fn as_ref(&self) -> Fact<&T> {
        match self {
            Fact::Known(v) => Fact::Known(v),
            Fact::Unknown { unknown } => Fact::Unknown {
                unknown: unknown.clone(),
            },
        }
    }
}

impl<T, E: fmt::Display> From<Result<T, E>> for Fact<T> {
    fn from(r: Result<T, E>) -> Self {
        match r {
            Ok(v) => Fact::Known(v),
            Err(e) => Fact::unknown(e.to_string()),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Fact<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Known(v) => v.fmt(f),
            Fact::Unknown { unknown } => write!(f, "unknown ({unknown})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_plain_value_or_unknown_object() {
        let k: Fact<u32> = Fact::Known(7);
        let u: Fact<u32> = Fact::unknown("no such file");
        assert_eq!(serde_json::to_string(&k).unwrap(), "7");
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#"{"unknown":"no such file"}"#
        );
        let back: Fact<u32> = serde_json::from_str(r#"{"unknown":"x"}"#).unwrap();
        assert_eq!(back.reason(), Some("x"));
        let back: Fact<String> = serde_json::from_str(r#""AMD""#).unwrap();
        assert_eq!(back.known().map(String::as_str), Some("AMD"));
    }

    #[test]
    fn display_says_why() {
        let u: Fact<u32> = Fact::unknown("not exposed in this VM");
        assert_eq!(u.to_string(), "unknown (not exposed in this VM)");
    }
}
