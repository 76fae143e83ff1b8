//! On-disk cache of compiled modules, keyed by the module's digest and the
//! engine's compatibility hash, so a second deploy does not recompile.
//!
//! Compiled code is run without further checks, so the cache is trusted
//! only when its directory is a real directory owned by us with no access
//! for anyone else (0700), and each artifact only when its sha256 matches
//! the digest recorded next to it when it was written. A tampered, swapped
//! or truncated artifact is recompiled, never run.

use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::sys::private_file;

/// Largest compiled artifact read back.
const MAX_ARTIFACT: u64 = 256 << 20;

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

/// The file holding the sha256 of the artifact at `artifact`.
fn digest_file(artifact: &Path) -> PathBuf {
    artifact.with_extension("cwasm.sha256")
}

/// Whether `dir` may hold code we run: a directory (not a symlink) owned by
/// us, with no permissions for group or others.
fn trusted_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| {
        m.file_type().is_dir()
            && m.uid() == nix::unistd::geteuid().as_raw()
            && m.mode() & 0o077 == 0
    })
}

fn read_private(path: &Path, max: u64) -> Option<Vec<u8>> {
    let f = private_file::open_read(path).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.file_type().is_file() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return None;
    }
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= max).then_some(bytes)
}

pub(super) fn fetch(
    engine: &wasmtime::Engine,
    dir: &Path,
    digest: &str,
) -> Option<wasmtime::Module> {
    if !trusted_dir(dir) {
        return None;
    }
    let path = entry(engine, dir, digest);
    let recorded = read_private(&digest_file(&path), 128)?;
    let bytes = read_private(&path, MAX_ARTIFACT)?;
    if self::digest(&bytes).as_bytes() != recorded.as_slice() {
        return None;
    }
    crate::sys::artifact::load_verified(engine, &bytes)
}

/// Why a compiled module couldn't be cached.
#[derive(Debug, thiserror::Error)]
pub(super) enum StoreError {
    #[error("serializing the compiled module: {0:#}")]
    Serialize(wasmtime::Error),
    #[error(transparent)]
    Write(#[from] private_file::PrivateFileError),
}

pub(super) fn store(dir: &Path, digest: &str, module: &wasmtime::Module) -> Result<(), StoreError> {
    private_file::ensure_dir(dir)?;
    let path = entry(module.engine(), dir, digest);
    let bytes = module.serialize().map_err(StoreError::Serialize)?;
    // The artifact first: a digest file never vouches for a half-written one.
    private_file::write_atomic(&path, &bytes, 0o600)?;
    private_file::write_atomic(&digest_file(&path), self::digest(&bytes).as_bytes(), 0o600)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::super::Engine;
    use super::*;

    const WAT_A: &str = r#"(module (func (export "f") (result i32) i32.const 1))"#;
    const WAT_B: &str = r#"(module (func (export "f") (result i32) i32.const 2))"#;

    fn compile(engine: &Engine, dir: &Path, wat: &str) -> (wasmtime::Module, bool) {
        let bytes = wat.as_bytes();
        let d = digest(bytes);
        match fetch(engine.wasmtime(), dir, &d) {
            Some(m) => (m, true),
            None => {
                let m = wasmtime::Module::new(engine.wasmtime(), bytes).unwrap();
                store(dir, &d, &m).unwrap();
                (m, false)
            }
        }
    }

    fn call_f(engine: &Engine, m: &wasmtime::Module) -> i32 {
        let mut store = wasmtime::Store::new(engine.wasmtime(), ());
        store.set_epoch_deadline(1_000_000);
        let i = wasmtime::Instance::new(&mut store, m, &[]).unwrap();
        i.get_typed_func::<(), i32>(&mut store, "f")
            .unwrap()
            .call(&mut store, ())
            .unwrap()
    }

    fn artifact(engine: &Engine, dir: &Path, wat: &str) -> PathBuf {
        entry(engine.wasmtime(), dir, &digest(wat.as_bytes()))
    }

    #[test]
    fn tampered_or_swapped_artifacts_are_recompiled_not_run() {
        let dir = std::env::temp_dir().join(format!("nfvhost-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::new(None).unwrap();
        let (_, cached) = compile(&engine, &dir, WAT_A);
        assert!(!cached);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let (m, cached) = compile(&engine, &dir, WAT_A);
        assert!(cached);
        assert_eq!(call_f(&engine, &m), 1);

        // Tampered: one byte of the artifact changed.
        let a = artifact(&engine, &dir, WAT_A);
        let mut bytes = std::fs::read(&a).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&a, &bytes).unwrap();
        let (m, cached) = compile(&engine, &dir, WAT_A);
        assert!(!cached, "a tampered artifact was used");
        assert_eq!(call_f(&engine, &m), 1);

        // Swapped: B's valid artifact put where A's belongs.
        compile(&engine, &dir, WAT_B);
        let b = artifact(&engine, &dir, WAT_B);
        std::fs::copy(&b, &a).unwrap();
        let (m, cached) = compile(&engine, &dir, WAT_A);
        assert!(!cached, "a swapped artifact was used");
        assert_eq!(call_f(&engine, &m), 1);

        // A cache others can write is not trusted (they could swap an
        // artifact together with its digest file).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (_, cached) = compile(&engine, &dir, WAT_A);
        assert!(!cached, "a world-writable cache was trusted");
        // store() tightened it again.
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let (_, cached) = compile(&engine, &dir, WAT_A);
        assert!(cached);

        // A symlinked cache directory is not trusted.
        let link = dir.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(fetch(engine.wasmtime(), &link, &digest(WAT_A.as_bytes())).is_none());
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
