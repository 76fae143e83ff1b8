//! The compiled nat module through the host engine (see vnfs/nat).
