//! On-disk cache of compiled modules, keyed by the module's digest and the
//! engine's compatibility hash, so a second deploy does not recompile.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub(super) fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn entry(engine: &wasmtime::Engine, dir: &Path, digest: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
}

pub(super) fn fetch(
    engine: &wasmtime::Engine,
    dir: &Path,
    digest: &str,
) -> Option<wasmtime::Module> {
    crate::sys::artifact::load_precompiled(engine, &entry(engine, dir, digest))
}

/// Why a compiled module couldn't be cached.
#[derive(Debug, thiserror::Error)]
pub(super) enum StoreError {
    #[error("serializing the compiled module: {0:#}")]
    Serialize(wasmtime::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(super) fn store(dir: &Path, digest: &str, module: &wasmtime::Module) -> Result<(), StoreError> {
    let write = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write(dir))?;
    let path = entry(module.engine(), dir, digest);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let bytes = module.serialize().map_err(StoreError::Serialize)?;
    std::fs::write(&tmp, bytes).map_err(write(&tmp))?;
    // Only its owner may write it: loading it runs its code.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(write(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(write(&path))?;
    Ok(())
}
