//! Loading a precompiled wasm module (native code) from the module cache.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Loads a module that [`wasmtime::Module::serialize`] wrote to `path` for
/// an engine like `engine`. `None` if the file is missing, is not a regular
/// file owned by the user running nfvhost, is writable by anyone else, or
/// wasmtime refuses it (then the caller compiles the module again).
pub fn load_precompiled(engine: &wasmtime::Engine, path: &Path) -> Option<wasmtime::Module> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let ours =
        meta.is_file() && meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o022 == 0;
    if !ours {
        return None;
    }
    // SAFETY: deserializing runs native code from the file, so it must be
    // one this program wrote with `Module::serialize`: the cache writes it
    // under a name carrying the engine's compatibility hash, and we checked
    // above that it is a regular file of ours that nobody else can write.
    // wasmtime still checks the header and refuses an incompatible artifact.
    unsafe { wasmtime::Module::deserialize_file(engine, path) }.ok()
}
