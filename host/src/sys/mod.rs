//! Namespaces, links and cgroups.
