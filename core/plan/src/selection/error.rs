//! The one error a selection gives.

use std::fmt;

/// Why a selection cannot be parsed or evaluated. One line when displayed, e.g.
/// `invalid selection "a and (b": column 9: expected ')' to close the '(' at column 7`. A long
/// selection is shown cut to [`SHOWN`] characters around the column, with `…` where it was cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SelectionError {
    /// The selection as typed.
    pub input: String,
    /// 1-based character column of the offending token (input length + 1 for "unexpected end").
    pub column: usize,
    /// What is wrong, without the input or the column.
    pub message: String,
}

/// How many characters of the selection an error shows at most.
pub(super) const SHOWN: usize = 60;

impl fmt::Display for SelectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chars: Vec<char> = self.input.chars().collect();
        let shown = if chars.len() <= SHOWN {
            format!("{:?}", self.input)
        } else {
            // A window of SHOWN characters ending a little after the column.
            let end = (self.column + SHOWN / 4).clamp(SHOWN, chars.len());
            let start = end - SHOWN;
            let window: String = chars[start..end].iter().collect();
            let head = if start > 0 { "…" } else { "" };
            let tail = if end < chars.len() { "…" } else { "" };
            format!("{head}{window:?}{tail} ({} characters)", chars.len())
        };
        write!(
            f,
            "invalid selection {shown}: column {}: {}",
            self.column, self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_selection_is_cut_around_its_column() {
        let error = |input: String, column: usize| {
            SelectionError {
                input,
                column,
                message: "what is wrong".to_owned(),
            }
            .to_string()
        };
        assert_eq!(
            error("a and (b".to_owned(), 9),
            "invalid selection \"a and (b\": column 9: what is wrong"
        );
        let long = format!("{} and (", "x".repeat(20_000));
        let shown = error(long.clone(), long.len() + 1);
        assert_eq!(
            shown,
            format!(
                "invalid selection …\"{} and (\" (20006 characters): column 20007: what is wrong",
                "x".repeat(54)
            )
        );
        let early = error(format!("(( {}", "y".repeat(500)), 1);
        assert!(early.starts_with("invalid selection \"(( yyy"), "{early}");
        assert!(early.contains("\"… (503 characters): column 1"), "{early}");
    }
}
