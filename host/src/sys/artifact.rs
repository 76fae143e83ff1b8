//! Loading a precompiled wasm module (native code) from the module cache.

/// Loads a module from `bytes` that [`wasmtime::Module::serialize`] wrote
/// for an engine like `engine`; `None` if wasmtime refuses it (then the
/// caller compiles the module again).
///
/// The caller vouches for `bytes`: the module cache passes only an artifact
/// read from a directory only we can write (0700, owned by us, not a
/// symlink) whose sha256 matches the digest recorded when it was written.
pub fn load_verified(engine: &wasmtime::Engine, bytes: &[u8]) -> Option<wasmtime::Module> {
    // SAFETY: deserializing runs native code from `bytes`, so they must be
    // exactly what this program wrote with `Module::serialize`: the cache
    // checked their sha256 against the digest it recorded then, in a
    // directory nobody else can write, under a name carrying the engine's
    // compatibility hash. wasmtime still checks the header and refuses an
    // incompatible artifact.
    unsafe { wasmtime::Module::deserialize(engine, bytes) }.ok()
}
