//! Validation errors that point at a file, a position and a dotted key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a tenant's configuration.
///
/// Displays as `{file}:{line}:{column}: {key}: {message}`; the position is
/// left out when unknown (`line == 0`) and the key when empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct PolicyError {
    /// The file (usually `policy.toml`) or tenant directory concerned.
    pub file: PathBuf,
    /// 1-based line; 0 when the error has no position.
    pub line: usize,
    /// 1-based column in characters; 0 when unknown.
    pub column: usize,
    /// Dotted key such as `limits.memory`, `env.PATH` or `mount[0].path`; may be empty.
    pub key: String,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl PolicyError {
    /// An error without a position, e.g. about a missing file or directory.
    pub fn new(file: &Path, key: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// An error at byte range `span` of `text` (the contents of `file`).
    pub(crate) fn at(
        file: &Path,
        text: &str,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = span.map_or((0, 0), |span| position(text, span.start));
        Self {
            line,
            column,
            ..Self::new(file, key, message)
        }
    }

    fn render(&self) -> String {
        let mut out = self.file.display().to_string();
        if self.line > 0 {
            out += &format!(":{}", self.line);
            if self.column > 0 {
                out += &format!(":{}", self.column);
            }
        }
        if !self.key.is_empty() {
            out += &format!(": {}", self.key);
        }
        out + ": " + &self.message
    }
}

/// All problems found in one tenant's configuration (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl std::error::Error for PolicyErrors {}

impl fmt::Display for PolicyErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl From<PolicyError> for PolicyErrors {
    fn from(error: PolicyError) -> Self {
        Self(vec![error])
    }
}

/// 1-based (line, column) of byte `offset` in `text`; the column counts characters.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let text = "a = 1\n[limits]\nmemory = \"x\"\n";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, 6), (2, 1));
        assert_eq!(position(text, 24), (3, 10));
        assert_eq!(position("é = 1", 2), (1, 2));
        assert_eq!(position("é = 1", 1), (1, 1));
        assert_eq!(position("", 5), (1, 1));
    }

    #[test]
    fn display() {
        let file = Path::new("/srv/t/alice/policy.toml");
        let mut e = PolicyError::new(file, "limits.memory", "unknown unit");
        assert_eq!(
            e.to_string(),
            "/srv/t/alice/policy.toml: limits.memory: unknown unit"
        );
        e.line = 7;
        e.column = 10;
        assert_eq!(
            e.to_string(),
            "/srv/t/alice/policy.toml:7:10: limits.memory: unknown unit"
        );
        e.key.clear();
        assert_eq!(e.to_string(), "/srv/t/alice/policy.toml:7:10: unknown unit");
        let all = PolicyErrors(vec![e.clone(), e]);
        assert_eq!(all.to_string().lines().count(), 2);
    }
}
