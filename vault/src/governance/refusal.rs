//! Why a step of the quality, feedback or assessment workflow is refused:
//! the caller's part does not allow it (403), the record is in the wrong
//! state (409), or the input is wrong (400). The API maps each variant to
//! its status; the text goes to the ledger.

/// A refused workflow step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepRefused {
    /// The caller's part in the workflow does not allow the step.
    #[error("{action} is not allowed: {why}")]
    NotAllowed {
        /// What was refused.
        action: &'static str,
        /// Who may do it instead.
        why: String,
    },
    /// The record is not in a state that allows the step.
    #[error("{what} {id} is {state}; cannot {action}")]
    WrongState {
        /// `quality ticket`, `feedback`, ...
        what: &'static str,
        /// The record's id.
        id: String,
        /// Its state.
        state: &'static str,
        /// What was refused.
        action: &'static str,
    },
    /// A field of the caller's input is wrong.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl StepRefused {
    /// An [`StepRefused::Invalid`] for `field`.
    pub fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        StepRefused::Invalid {
            field,
            problem: problem.into(),
        }
    }
}

/// `value` trimmed, 1 to `max` bytes, or [`StepRefused::Invalid`].
pub fn checked_text(field: &'static str, value: &str, max: usize) -> Result<String, StepRefused> {
    let value = value.trim();
    if value.is_empty() || value.len() > max {
        return Err(StepRefused::invalid(
            field,
            format!("must be 1 to {max} bytes"),
        ));
    }
    Ok(value.to_owned())
}

/// A fresh record id: `prefix`, a dash and 16 random hex digits.
pub fn new_id(prefix: &str) -> Result<String, StepRefused> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StepRefused::invalid("id", "random number generator failed"))?;
    Ok(format!("{prefix}-{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(checked_text("d", "  x ", 4).unwrap(), "x");
        assert!(checked_text("d", "   ", 4).is_err());
        let err = checked_text("description", "abcde", 4).unwrap_err();
        assert_eq!(err.to_string(), "description: must be 1 to 4 bytes");
    }

    #[test]
    fn ids_are_prefixed_and_random() {
        let a = new_id("qt").unwrap();
        assert!(a.starts_with("qt-") && a.len() == 19, "{a}");
        assert_ne!(a, new_id("qt").unwrap());
    }
}
