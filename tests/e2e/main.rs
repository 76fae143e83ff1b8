//! End-to-end tests: real chains in real namespaces, real `ping`, `iperf3`
//! and `tcpdump`, and nfvhost's own `/metrics`.
//!
//! Tests that need root print a notice and pass vacuously without it; CI
//! runs as root. Deploying tests take a lock, so chains never overlap.

mod capture;
mod frames;
mod support;

mod authoring;
mod basic;
mod bench;
mod bench_cmd;
mod capture_cmd;
mod cli;
mod dashboards;
mod edge;
mod engine;
mod faulty;
mod fused;
mod hostile;
mod lab_qinq;
mod lab_vlan;
mod lab_wan;
mod lifecycle;
mod link_carrier;
mod matrix;
mod multihost;
mod ops;
mod port_faults;
mod replace;
mod sandbox;
mod tpacket;
mod vlan;
mod vnf_dhcp;
mod vnf_firewall;
mod vnf_nat;
mod xdp;
