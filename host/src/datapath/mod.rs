//! The data path inside a worker: ports, the stats segment, and the loop
//! that moves batches of frames between ports and the module.

pub mod packet_socket;
pub mod port;
pub mod stats;
pub mod tap;
pub mod worker;
