//! End-to-end tests: real chains in real namespaces, real `ping`, `iperf3`
//! and `tcpdump`, and nfvhost's own `/metrics`.
//!
//! Tests that need root print a notice and pass vacuously without it; CI
//! runs as root. Deploying tests take a lock, so chains never overlap.

mod frames;
mod support;

mod basic;
mod bench;
mod bench_cmd;
mod cli;
mod dashboards;
mod edge;
mod engine;
mod faulty;
mod fused;
mod hostile;
mod lifecycle;
mod matrix;
mod port_faults;
mod sandbox;
mod vnf_dhcp;
mod vnf_firewall;
mod vnf_nat;
