//! Integration tests of the Cloud Foundry double: one test binary (one link) for all topics.

mod common;
mod conformance;
mod faults;
mod route_services;
mod router_delay;
mod semantics;
mod switch_basic;
mod switch_bench;
mod switch_concurrent;
mod switch_crash;
mod switch_errors;
mod switch_faults;
mod switch_fleet;
mod switch_honest;
mod switch_lifecycle;
mod switch_load;
mod switch_order;
mod switch_ports;
mod switch_production;
mod switch_ratelimit;
mod switch_routers;
mod switch_routesvc;
mod switch_run;
mod switch_shared;
mod switch_support;
mod uaa;
