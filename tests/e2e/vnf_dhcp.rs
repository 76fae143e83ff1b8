//! The compiled dhcp module through the host engine (see vnfs/dhcp).
