//! The compiled firewall module through the host engine (see vnfs/firewall).
