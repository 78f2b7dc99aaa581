//! The tenant's grants as paths: which host files a guest path names, and
//! which guest path a host file is seen under. Used by every host call that
//! takes or returns a path (sendfile, `req.filename`, handler directories).

use std::path::{Path, PathBuf};

use wasmpy_policies::Tenant;

use crate::instance::GUEST_APP;

/// The directories a tenant may name: `/app` and its policy's mounts.
#[derive(Debug, Clone)]
pub struct Grants {
    /// (guest root, canonical host root), longest guest root first.
    roots: Vec<(String, PathBuf)>,
}

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathRefused {
    /// Not absolute, has `..`, NUL or is too long.
    #[error("{0:?} is not a clean absolute path")]
    Malformed(String),
    /// Outside `/app` and the policy's mounts (or a symlink leads out).
    #[error("{0:?} is outside the tenant's directories")]
    Outside(String),
}

impl Grants {
    /// The grants of `tenant` (mounts whose host directory is gone are left out).
    pub fn of(tenant: &Tenant) -> Grants {
        let mut roots = vec![(GUEST_APP.to_string(), tenant.app_dir.clone())];
        for mount in &tenant.policy.mounts {
            if let Ok(host) = mount.host.canonicalize() {
                roots.push((mount.guest.trim_end_matches('/').to_string(), host));
            }
        }
        roots.sort_by_key(|(guest, _)| std::cmp::Reverse(guest.len()));
        Grants { roots }
    }

    /// The host path of guest path `guest`, checked lexically (no `..`,
    /// inside a grant). The file need not exist.
    pub fn to_host(&self, guest: &str) -> Result<PathBuf, PathRefused> {
        if !crate::http::clean_guest_path(guest) {
            return Err(PathRefused::Malformed(guest.chars().take(200).collect()));
        }
        for (root, host) in &self.roots {
            if let Some(rest) = crate::http::below(guest, root) {
                return Ok(if rest.is_empty() {
                    host.clone()
                } else {
                    host.join(rest)
                });
            }
        }
        Err(PathRefused::Outside(guest.chars().take(200).collect()))
    }

    /// Like [`Grants::to_host`], and the file exists and its real path
    /// (symlinks resolved) is still inside the same grant.
    pub fn to_host_existing(&self, guest: &str) -> Result<PathBuf, PathRefused> {
        let host = self.to_host(guest)?;
        let outside = || PathRefused::Outside(guest.chars().take(200).collect());
        let real = host.canonicalize().map_err(|_| outside())?;
        if self.roots.iter().any(|(_, root)| real.starts_with(root)) {
            Ok(real)
        } else {
            Err(outside())
        }
    }

    /// The guest path a host path is seen under, if it is inside a grant.
    /// A trailing slash (Apache's `r->filename` of a directory) is kept.
    pub fn to_guest(&self, host: &Path) -> Option<String> {
        let slash = host.as_os_str().as_encoded_bytes().ends_with(b"/");
        let mut best: Option<(usize, String)> = None;
        for (guest, root) in &self.roots {
            if let Ok(rest) = host.strip_prefix(root) {
                let len = root.as_os_str().len();
                if best.as_ref().is_some_and(|(l, _)| *l >= len) {
                    continue;
                }
                let rest = rest.to_str()?;
                let path = if rest.is_empty() {
                    guest.clone()
                } else {
                    format!("{guest}/{rest}")
                };
                best = Some((len, path));
            }
        }
        best.map(|(_, path)| {
            if slash && !path.ends_with('/') {
                path + "/"
            } else {
                path
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(app: &Path) -> Grants {
        Grants {
            roots: vec![
                ("/data/x".into(), PathBuf::from("/srv/x")),
                ("/app".into(), app.to_path_buf()),
            ],
        }
    }

    #[test]
    fn maps_inside_and_refuses_outside() {
        let g = grants(Path::new("/t/app"));
        assert_eq!(
            g.to_host("/app/a/b.py").unwrap(),
            Path::new("/t/app/a/b.py")
        );
        assert_eq!(g.to_host("/app").unwrap(), Path::new("/t/app"));
        assert_eq!(g.to_host("/data/x/f").unwrap(), Path::new("/srv/x/f"));
        for bad in [
            "/etc/passwd",
            "/application",
            "app/x",
            "/app/../etc",
            "/app/a\0",
            "",
        ] {
            assert!(g.to_host(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            g.to_guest(Path::new("/t/app/x/y.py")).as_deref(),
            Some("/app/x/y.py")
        );
        assert_eq!(g.to_guest(Path::new("/t/app")).as_deref(), Some("/app"));
        assert_eq!(g.to_guest(Path::new("/t/app/")).as_deref(), Some("/app/"));
        assert_eq!(
            g.to_guest(Path::new("/t/app/d/")).as_deref(),
            Some("/app/d/")
        );
        assert_eq!(g.to_guest(Path::new("/t/apple")), None);
        assert_eq!(g.to_guest(Path::new("/etc")), None);
    }

    #[test]
    fn symlinks_out_of_a_grant_are_refused() {
        let dir = std::env::temp_dir().join(format!("wasmpy-grants-{}", std::process::id()));
        let app = dir.join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("ok.txt"), "x").unwrap();
        let _ = std::os::unix::fs::symlink("/etc/passwd", app.join("out"));
        let g = grants(&app.canonicalize().unwrap());
        assert!(g.to_host_existing("/app/ok.txt").is_ok());
        assert!(g.to_host_existing("/app/out").is_err());
        assert!(g.to_host_existing("/app/missing").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
