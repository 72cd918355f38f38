//! Files this server writes next to its database: created readable by their owner only (0600) in
//! folders only their owner can enter (0700), because together they are a person's finances and the
//! keys to them (the database, its backups, model files, the signing and encryption keys).

use std::io::Write;
use std::path::Path;

/// Create `dir` (and its parents) with mode 0700; an existing folder is tightened to 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Create a new file with mode 0600 (truncating one that exists).
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// The signing key in `path`, generated there (0600) when the file does not exist. Several processes
/// starting at once agree: the first to create the file wins and the others read it.
pub fn signing_key(path: &Path) -> anyhow::Result<String> {
    let read = |path: &Path| -> anyhow::Result<String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the signing key file {}: {e}", path.display()))?;
        let key = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
        anyhow::ensure!(key.len() >= 32, "the signing key in {} is shorter than 32 characters", path.display());
        Ok(key.to_owned())
    };
    if path.exists() {
        return read(path);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    let body = format!(
        "# Magpie's key signing access tokens and web sessions. Anyone holding it can sign in as anyone:\n\
         # keep it private. Replacing it signs everyone out.\n{}\n",
        crate::auth::token::generate("")
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => {
            f.write_all(body.as_bytes())?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), "generated the key signing access tokens");
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => anyhow::bail!("cannot create the signing key file {}: {e}", path.display()),
    }
    read(path)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn folders_and_files_are_private_and_the_key_is_stable() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let key_path = dir.join("auth.key");
        let key = signing_key(&key_path).unwrap();
        assert_eq!(mode(&key_path), 0o600);
        assert!(key.len() >= 32);
        assert_eq!(signing_key(&key_path).unwrap(), key, "read back, not regenerated");
        drop(create_private(&dir.join("x")).unwrap());
        assert_eq!(mode(&dir.join("x")), 0o600);
    }
}
