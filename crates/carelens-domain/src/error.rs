/// A value that breaks a domain rule. Messages name the field and never echo patient data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
}

pub type Result<T, E = DomainError> = std::result::Result<T, E>;

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DomainError {
    DomainError::Invalid { field: field.into(), reason: reason.into() }
}

/// Fails with `field` when `ok` is false.
pub(crate) fn ensure(ok: bool, field: &str, reason: impl FnOnce() -> String) -> Result<()> {
    if ok { Ok(()) } else { Err(invalid(field, reason())) }
}
