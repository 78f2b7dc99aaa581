//! Compiled artifacts in the cache directory, each written with the SHA-256
//! of its bytes beside it (`<file>.sha256`) and used only while that digest
//! matches: a truncated, corrupted or foreign file is rebuilt, never run.
//! The compiled runtime (`runtime.rs`) and tenant snapshots
//! (`snapshot.rs`) are kept this way.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the digest of `path` is recorded.
pub(crate) fn digest_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// What the recorded digest says of a cached file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The file or its digest is missing.
    Missing,
    /// The file's bytes do not match its recorded digest.
    Mismatch,
    /// The file is as written.
    Intact,
}

/// Check `path` against its recorded digest.
pub(crate) fn check(path: &Path) -> Checked {
    let (Ok(expected), Ok(bytes)) = (
        std::fs::read_to_string(digest_path(path)),
        std::fs::read(path),
    ) else {
        return Checked::Missing;
    };
    if hex(&Sha256::digest(&bytes)) == expected.trim() {
        Checked::Intact
    } else {
        Checked::Mismatch
    }
}

/// Write `bytes` to `path` and their digest beside it, each atomically
/// (temp file + rename), creating the directory.
pub(crate) fn write_checked(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let pid = std::process::id();
    let digest = digest_path(path);
    for (target, contents) in [
        (path, bytes),
        (digest.as_path(), hex(&Sha256::digest(bytes)).as_bytes()),
    ] {
        let mut tmp = target.as_os_str().to_owned();
        tmp.push(format!(".tmp{pid}"));
        std::fs::write(&tmp, contents)?;
        std::fs::rename(&tmp, target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_intact_only_as_written() {
        let dir = std::env::temp_dir().join(format!("wasmpy-cache-{}", std::process::id()));
        let file = dir.join("a.cwasm");
        assert_eq!(check(&file), Checked::Missing);
        write_checked(&file, b"compiled").unwrap();
        assert_eq!(check(&file), Checked::Intact);
        std::fs::write(&file, b"compiles").unwrap();
        assert_eq!(check(&file), Checked::Mismatch);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
