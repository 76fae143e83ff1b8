//! The WebAssembly engine: one shared [`wasmtime::Engine`] and `Linker`,
//! module loading with an on-disk cache of compiled code, the ABI check, and
//! the batch a module processes.
//!
//! - `abi_check`: a compiled module's imports and exports against the ABI.
//! - `cache`: compiled code on disk, keyed by digest and engine.
//! - `instance`: the host functions (the shared `Linker`) and one
//!   [`VnfInstance`] per store.
//! - `batch`: [`Batch`], the frames of one call and their verdicts.
//! - `clock`: [`ClockMode`], the module's time: real, or set by the caller.
//! - `vnet`: [`VnetHeader`], a frame's offload state.
//!
//! One `Engine` and its `Linker` are built once per process and shared: a
//! module is pre-linked ([`wasmtime::InstancePre`]) when it is loaded, so
//! every instantiation, including each restart after a trap, only creates a
//! `Store`, bounded by a linear-memory limit and an epoch deadline per call.

mod abi_check;
mod batch;
mod cache;
mod clock;
mod instance;
#[cfg(test)]
mod sandbox_tests;
mod vnet;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub use abi_check::{check_module, AbiError};
pub use batch::{Batch, FrameIn};
pub use clock::ClockMode;
pub use instance::{
    CallFailure, EmittedFrame, InstanceError, InstanceLimits, MetricDef, StateError, VnfInstance,
    MAX_TABLE_ELEMENTS,
};
pub use vnet::{GsoType, VnetHeader, VNET_HDR_LEN};

use instance::HostState;

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Errors creating the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("couldn't create the wasm engine: {0:#}")]
    Create(wasmtime::Error),
    /// The host functions couldn't be defined.
    #[error("couldn't define the host functions: {0:#}")]
    Link(wasmtime::Error),
    /// The thread that advances the epoch couldn't start.
    #[error("couldn't start the epoch thread: {0}")]
    EpochThread(std::io::Error),
}

/// Errors loading a module.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Couldn't read module {path}: {source}
    #[error("couldn't read module {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a valid WebAssembly module.
    #[error("{path} is not a valid WebAssembly module: {error:#}")]
    Compile {
        path: PathBuf,
        error: wasmtime::Error,
    },
    /// The path is not a regular file.
    #[error("{0}: not a regular file; a module must be a .wasm file")]
    NotAFile(PathBuf),
    /// The file is larger than [`MAX_MODULE_SIZE`].
    #[error("{0}: {1} bytes; modules are limited to {max} MiB", max = MAX_MODULE_SIZE >> 20)]
    TooLarge(PathBuf, u64),
    /// The module does not speak our ABI.
    #[error("{path}: {source}")]
    Abi { path: PathBuf, source: AbiError },
    /// The module's imports couldn't be resolved against the host functions.
    #[error("couldn't link {path} against the host functions: {error:#}")]
    Link {
        path: PathBuf,
        error: wasmtime::Error,
    },
}

/// A compiled module that passed the ABI check, pre-linked against the
/// engine's host functions, and its digest.
#[derive(Clone)]
pub struct LoadedModule {
    pub module: wasmtime::Module,
    /// sha256 of the `.wasm` bytes, hex.
    pub digest: String,
    pub path: PathBuf,
    /// Whether the compiled code came from the cache.
    pub from_cache: bool,
    /// Imports resolved once; [`VnfInstance::new`] instantiates from it.
    pre: wasmtime::InstancePre<HostState>,
}

impl LoadedModule {
    /// Whether the module uses the one-shot timer: it imports `timer_at`
    /// and exports `nfv_timer`. (Every SDK module exports `nfv_timer`; only
    /// one that calls `Context::set_timer` keeps the import after linking.)
    pub fn has_timer(&self) -> bool {
        let imports_timer_at = self.module.imports().any(|i| {
            i.module() == nfvhost_abi::IMPORT_MODULE && i.name() == nfvhost_abi::IMPORT_TIMER_AT
        });
        imports_timer_at && self.module.get_export(nfvhost_abi::EXPORT_TIMER).is_some()
    }
}

/// The engine shared by every instance in a process, and the one `Linker`
/// holding the host functions.
#[derive(Clone)]
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Arc<wasmtime::Linker<HostState>>,
    cache_dir: Option<PathBuf>,
}

impl Engine {
    /// Creates the engine and its linker, and starts the thread that
    /// advances its epoch.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, EngineError> {
        let engine = Self::build(cache_dir, true)?;
        engine.start_ticker()?;
        Ok(engine)
    }

    /// The engine of a worker: it compiles on the calling thread and its
    /// epoch thread is started later ([`Engine::start_ticker`]), so that
    /// the worker is single-threaded while it drops its privileges. Until
    /// then no call into a module may be made (it would have no deadline).
    pub fn for_worker(cache_dir: Option<PathBuf>) -> Result<Self, EngineError> {
        Self::build(cache_dir, false)
    }

    fn build(cache_dir: Option<PathBuf>, parallel_compilation: bool) -> Result<Self, EngineError> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        config.parallel_compilation(parallel_compilation);
        // One linear memory per module (the ABI's `memory` export): a
        // module declaring more is refused at compile time.
        config.wasm_multi_memory(false);
        let engine = wasmtime::Engine::new(&config).map_err(EngineError::Create)?;
        let linker = Arc::new(instance::build_linker(&engine).map_err(EngineError::Link)?);
        Ok(Engine {
            engine,
            linker,
            cache_dir,
        })
    }

    /// Starts the thread that advances the epoch every [`EPOCH_TICK`]; it
    /// ends when the last handle to the engine is dropped. Returns once the
    /// thread runs, so the C library's per-thread set-up (rseq, signal
    /// stack) is done before a worker installs its syscall filter.
    pub fn start_ticker(&self) -> Result<(), EngineError> {
        let weak = self.engine.weak();
        let (started, running) = std::sync::mpsc::sync_channel(1);
        thread::Builder::new()
            .name("nfv-epoch".into())
            .spawn(move || {
                let _ = started.send(());
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(EngineError::EpochThread)?;
        running.recv().map_err(|_| {
            EngineError::EpochThread(std::io::Error::other("the epoch thread ended at once"))
        })?;
        Ok(())
    }

    /// The default cache: `$NFVHOST_CACHE_DIR`, else `/var/cache/nfvhost`
    /// for root, else `~/.cache/nfvhost`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("NFVHOST_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if nix::unistd::geteuid().is_root() {
            return Some(PathBuf::from("/var/cache/nfvhost"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/nfvhost"))
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// Reads, compiles (or fetches from the cache) and ABI-checks a module.
    /// Only a regular file of at most [`MAX_MODULE_SIZE`] bytes is read (a
    /// FIFO, device or directory is refused without blocking on it).
    pub fn load(&self, path: &Path) -> Result<LoadedModule, LoadError> {
        let bytes = read_module(path)?;
        self.load_bytes(path, &bytes)
    }

    /// Like [`Engine::load`] for bytes already in memory; `path` names them
    /// in messages.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<LoadedModule, LoadError> {
        let digest = cache::digest(bytes);
        let cached = self
            .cache_dir
            .as_deref()
            .and_then(|dir| cache::fetch(&self.engine, dir, &digest));
        let from_cache = cached.is_some();
        let module = match cached {
            Some(m) => m,
            None => {
                let m = wasmtime::Module::new(&self.engine, bytes).map_err(|error| {
                    LoadError::Compile {
                        path: path.to_owned(),
                        error,
                    }
                })?;
                if let Some(dir) = &self.cache_dir {
                    // A cache we cannot write only costs a recompile next time.
                    if let Err(e) = cache::store(dir, &digest, &m) {
                        tracing::warn!(
                            "couldn't cache compiled module in {}: {e:#}",
                            dir.display()
                        );
                    }
                }
                m
            }
        };
        self.prepare(path, module, digest, from_cache)
    }

    /// Loads a module another nfvhost process of this machine compiled and
    /// serialized into `artifact` (a sealed memfd the supervisor hands a
    /// sandboxed worker for `nfvhost replace`). The code is mapped from the
    /// descriptor, so no path is opened and no memfd is created here.
    pub fn load_artifact(
        &self,
        path: &Path,
        digest: String,
        artifact: std::fs::File,
    ) -> Result<LoadedModule, LoadError> {
        let module =
            crate::sys::artifact::load_handed_over(&self.engine, artifact).map_err(|error| {
                LoadError::Compile {
                    path: path.to_owned(),
                    error,
                }
            })?;
        self.prepare(path, module, digest, true)
    }

    /// The ABI check, the copy-on-write memory image and the pre-link.
    fn prepare(
        &self,
        path: &Path,
        module: wasmtime::Module,
        digest: String,
        from_cache: bool,
    ) -> Result<LoadedModule, LoadError> {
        check_module(&module).map_err(|source| LoadError::Abi {
            path: path.to_owned(),
            source,
        })?;
        // Build the copy-on-write memory image now (it takes a memfd when
        // the module is not file-backed), not at the first instantiation,
        // which a worker makes inside its seccomp sandbox.
        module
            .initialize_copy_on_write_image()
            .map_err(|error| LoadError::Compile {
                path: path.to_owned(),
                error,
            })?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|error| LoadError::Link {
                path: path.to_owned(),
                error,
            })?;
        Ok(LoadedModule {
            module,
            digest,
            path: path.to_owned(),
            from_cache,
            pre,
        })
    }
}

/// Largest `.wasm` file accepted.
pub const MAX_MODULE_SIZE: u64 = 32 << 20;

fn read_module(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(err)?;
    let meta = f.metadata().map_err(err)?;
    if !meta.file_type().is_file() {
        return Err(LoadError::NotAFile(path.to_owned()));
    }
    if meta.len() > MAX_MODULE_SIZE {
        return Err(LoadError::TooLarge(path.to_owned(), meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_MODULE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_MODULE_SIZE {
        return Err(LoadError::TooLarge(path.to_owned(), bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_regular_files_are_read_as_modules() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("m.wasm");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(read_module(&fifo), Err(LoadError::NotAFile(_))));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(matches!(
            read_module(dir.path()),
            Err(LoadError::NotAFile(_))
        ));
        assert!(matches!(
            read_module(Path::new("/dev/zero")),
            Err(LoadError::NotAFile(_))
        ));
        let big = dir.path().join("big.wasm");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_MODULE_SIZE + 1)
            .unwrap();
        let e = read_module(&big).unwrap_err();
        assert!(e.to_string().contains("limited to 32 MiB"), "{e}");
        let ok = dir.path().join("ok.wasm");
        std::fs::write(&ok, b"\0asm").unwrap();
        assert_eq!(read_module(&ok).unwrap(), b"\0asm");
    }
}
