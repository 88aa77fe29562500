//! Request counts per host, logged periodically: one line a minute instead of one per request,
//! so that logging never costs more than answering.

use std::{collections::HashMap, sync::Mutex, time::Duration};

/// Hosts tracked individually per interval; the rest are counted as `(other)` so that a flood of
/// made-up `Host` headers cannot grow memory.
const MAX_HOSTS: usize = 256;
const OTHER: &str = "(other)";

/// Counters since the last report.
#[derive(Debug, Default)]
pub struct Stats {
    counts: Mutex<HashMap<Box<str>, u64>>,
}

impl Stats {
    /// Counts one answered request for `host` (lower case, without port).
    pub fn record(&self, host: &str) {
        let Ok(mut counts) = self.counts.lock() else { return };
        if let Some(n) = counts.get_mut(host) {
            *n += 1;
        } else {
            let key = if counts.len() < MAX_HOSTS { host } else { OTHER };
            *counts.entry(key.into()).or_insert(0) += 1;
        }
    }

    /// Takes the counts since the last call, busiest host first.
    pub fn take(&self) -> Vec<(Box<str>, u64)> {
        let counts = match self.counts.lock() {
            Ok(mut counts) => std::mem::take(&mut *counts),
            Err(_) => return Vec::new(),
        };
        let mut list: Vec<_> = counts.into_iter().collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list
    }

    /// Logs the counts every `interval` while requests come in; never returns.
    pub async fn report_every(&self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let list = self.take();
            if list.is_empty() {
                continue;
            }
            let total: u64 = list.iter().map(|(_, n)| n).sum();
            let hosts: serde_json::Map<String, serde_json::Value> =
                list.iter().take(20).map(|(h, n)| (h.to_string(), (*n).into())).collect();
            tracing::info!(
                target: "maintenance_app::requests",
                total,
                interval_s = interval.as_secs(),
                hosts = %serde_json::Value::Object(hosts),
                "requests answered"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_host_and_caps_distinct_hosts() {
        let stats = Stats::default();
        for i in 0..1000 {
            stats.record(&format!("h{i}.example"));
        }
        stats.record("h0.example");
        let list = stats.take();
        assert_eq!(list.len(), MAX_HOSTS + 1);
        assert_eq!(list[0], ("(other)".into(), 1000 - MAX_HOSTS as u64));
        assert_eq!(list[1], ("h0.example".into(), 2));
        assert!(stats.take().is_empty(), "take resets the counts");
    }
}
