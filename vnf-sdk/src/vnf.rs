//! The trait a network function implements.

use alloc::string::String;
use core::fmt;

use serde::de::DeserializeOwned;

use crate::state::StateError;
use crate::{Context, Frame, InitContext, Verdict};

/// A network function.
///
/// The host creates one instance per VNF in the chain with [`Vnf::new`],
/// hands it every received frame through [`Vnf::process`] (in batches; see
/// [`Vnf::process_batch`]) and calls [`Vnf::tick`] periodically for timers.
pub trait Vnf: Sized {
    /// The `config:` section of the chain file entry, decoded from JSON.
    /// Use `#[serde(deny_unknown_fields)]` so typos are refused at
    /// `nfvhost validate` time with the file, line and column.
    type Config: DeserializeOwned;

    /// Builds the function from its configuration. Declare counters and
    /// look up ports through `ctx` here.
    fn new(ctx: &mut InitContext, config: Self::Config) -> Result<Self, ConfigError>;

    /// Decides what happens to one frame. The frame may be rewritten in place.
    fn process(&mut self, ctx: &mut Context, frame: &mut Frame<'_>) -> Verdict;

    /// Called once per batch with every frame of the batch, in arrival order.
    /// The default calls [`Vnf::process`] for each frame; override it to
    /// amortise work across a batch.
    fn process_batch(
        &mut self,
        ctx: &mut Context,
        frames: &mut [Frame<'_>],
        verdicts: &mut [Verdict],
    ) {
        for (frame, verdict) in frames.iter_mut().zip(verdicts.iter_mut()) {
            *verdict = self.process(ctx, frame);
        }
    }

    /// Periodic timer (about every 100 ms); expire state here.
    fn tick(&mut self, _ctx: &mut Context) {}

    /// The format version [`Vnf::save_state`] writes; bump it when the
    /// saved layout changes in a way an older reader cannot take.
    const STATE_VERSION: u32 = 1;

    /// The state to hand to the instance that replaces this one (`nfvhost
    /// replace`), or `None` (the default) for nothing to carry. See
    /// [`crate::state`] for the encoding. The replacement shares this
    /// instance's clock, so saved timestamps keep their meaning.
    fn save_state(&self) -> Option<alloc::vec::Vec<u8>> {
        None
    }

    /// Takes over the state a previous instance saved with format
    /// `version`; called after [`Vnf::new`] and before the first frame.
    /// Refuse what you do not understand: the host then keeps the running
    /// instance and reports the message. The default refuses everything.
    fn load_state(&mut self, version: u32, _bytes: &[u8]) -> Result<(), StateError> {
        Err(StateError::new(alloc::format!(
            "this module does not take saved state (format {version})"
        )))
    }

    /// The one-shot timer set with [`Context::set_timer`] has expired
    /// (`ctx.now_ns()` is at or past the time asked for). Set it again here
    /// for the next event; it does not repeat by itself.
    fn timer(&mut self, _ctx: &mut Context) {}

    /// A new configuration while running (`nfvhost link set` for the
    /// impair function). Return an error to keep the old one; the default
    /// refuses, since most functions are configured once.
    fn reconfigure(
        &mut self,
        _ctx: &mut Context,
        _config: Self::Config,
    ) -> Result<(), ConfigError> {
        Err(ConfigError::at(
            "",
            "this function cannot change its configuration while running",
        ))
    }
}

/// Why a configuration was refused, and where in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path into the `config:` section, such as `routes.0.via`;
    /// empty for the section as a whole.
    pub path: String,
    /// What is wrong, said so that the reader knows what to change.
    pub message: String,
}

impl ConfigError {
    /// An error at `path` (dotted keys and list indices: `routes.0.via`).
    ///
    /// ```
    /// use vnf_sdk::ConfigError;
    ///
    /// let e = ConfigError::at("routes.0.via", "10.9.9.9 is not in a connected subnet");
    /// assert_eq!(e.to_string(), "routes.0.via: 10.9.9.9 is not in a connected subnet");
    /// ```
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}
