//! lbfwd's model: the appliance settings and the desired state (pools,
//! networks, network interfaces, load balancers, routings), read from TOML and
//! from Ironcore YAML manifests, validated, and resolved into what the
//! dataplane needs: each load balancer's addresses, ports and destinations.
#![deny(unsafe_code)]

pub mod model;
