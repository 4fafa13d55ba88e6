//! The one error a selection gives.

/// Why a selection cannot be parsed or evaluated. One line when displayed, e.g.
/// `invalid selection "a and (b": column 9: expected ')' to close the '(' at column 7`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selection {input:?}: column {column}: {message}")]
pub struct SelectionError {
    /// The selection as typed.
    pub input: String,
    /// 1-based character column of the offending token (input length + 1 for "unexpected end").
    pub column: usize,
    /// What is wrong, without the input or the column.
    pub message: String,
}
