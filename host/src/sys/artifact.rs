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

/// Loads a module that the supervisor (our parent, root) compiled and
/// serialized into `file`, an anonymous memfd it sealed against writes and
/// handed over a socket pair only the two processes hold. The code is
/// mapped from the descriptor, so the module's memory image can be mapped
/// from it too (no memfd needed inside the worker's sandbox).
pub fn load_handed_over(
    engine: &wasmtime::Engine,
    file: std::fs::File,
) -> wasmtime::Result<wasmtime::Module> {
    // SAFETY: the bytes behind `file` are what the supervisor's
    // `Module::serialize` wrote for an engine with this configuration (the
    // supervisor loaded them through the verified module cache or compiled
    // them itself); the memfd is sealed (F_SEAL_WRITE, F_SEAL_SHRINK), so
    // they cannot change while mapped, and only the supervisor could send
    // it. wasmtime still checks the header and refuses an incompatible
    // artifact.
    unsafe { wasmtime::Module::deserialize_open_file(engine, file) }
}
