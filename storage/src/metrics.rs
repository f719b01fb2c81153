//! A small Prometheus metrics registry shared by every role of a process.
//!
//! Counters, gauges and histograms with labels, rendered in the Prometheus text format. One
//! process-wide [`registry()`] so the all-in-one process exposes every role's metrics on one
//! `/metrics` endpoint.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// The process-wide registry.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);
    &REGISTRY
}

#[derive(Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    kind: Kind,
    series: Mutex<BTreeMap<Vec<String>, Arc<Series>>>,
}

#[derive(Debug, Default)]
struct Series {
    /// Counter or gauge value (f64 bits for gauges), or histogram count.
    value: AtomicU64,
    /// Histogram sum (f64 bits).
    sum: AtomicU64,
    /// Histogram bucket counts.
    buckets: Vec<AtomicU64>,
}

/// Registered metric families.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<Vec<Arc<Family>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    fn family(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        kind: Kind,
    ) -> Arc<Family> {
        let mut families = lock(&self.families);
        if let Some(f) = families.iter().find(|f| f.name == name) {
            return Arc::clone(f);
        }
        let f = Arc::new(Family {
            name,
            help,
            labels,
            kind,
            series: Mutex::new(BTreeMap::new()),
        });
        families.push(Arc::clone(&f));
        f
    }

    /// A counter family (registering it once; later calls return the same family).
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Metric {
        Metric(self.family(name, help, labels, Kind::Counter))
    }

    /// A gauge family.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Metric {
        Metric(self.family(name, help, labels, Kind::Gauge))
    }

    /// A histogram family with the given bucket upper bounds.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Metric {
        Metric(self.family(name, help, labels, Kind::Histogram(buckets)))
    }

    /// Everything in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let families: Vec<Arc<Family>> = lock(&self.families).clone();
        for f in families {
            let ty = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram(_) => "histogram",
            };
            let _ = writeln!(
                out,
                "# HELP {} {}\n# TYPE {} {}",
                f.name, f.help, f.name, ty
            );
            for (values, s) in lock(&f.series).iter() {
                let labels = label_text(f.labels, values, None);
                match f.kind {
                    Kind::Counter => {
                        let _ = writeln!(
                            out,
                            "{}{} {}",
                            f.name,
                            labels,
                            s.value.load(Ordering::Relaxed)
                        );
                    }
                    Kind::Gauge => {
                        let v = f64::from_bits(s.value.load(Ordering::Relaxed));
                        let _ = writeln!(out, "{}{} {}", f.name, labels, v);
                    }
                    Kind::Histogram(bounds) => {
                        let mut cumulative = 0;
                        for (b, c) in bounds.iter().zip(&s.buckets) {
                            cumulative += c.load(Ordering::Relaxed);
                            let l = label_text(f.labels, values, Some(&b.to_string()));
                            let _ = writeln!(out, "{}_bucket{} {}", f.name, l, cumulative);
                        }
                        let count = s.value.load(Ordering::Relaxed);
                        let l = label_text(f.labels, values, Some("+Inf"));
                        let _ = writeln!(out, "{}_bucket{} {}", f.name, l, count);
                        let sum = f64::from_bits(s.sum.load(Ordering::Relaxed));
                        let _ = writeln!(
                            out,
                            "{}_sum{} {}\n{}_count{} {}",
                            f.name, labels, sum, f.name, labels, count
                        );
                    }
                }
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// A metric family; pick a series with [`with`](Metric::with).
#[derive(Debug, Clone)]
pub struct Metric(Arc<Family>);

/// One labelled series.
#[derive(Debug, Clone)]
pub struct Handle {
    series: Arc<Series>,
    bounds: &'static [f64],
}

impl Metric {
    /// The series with these label values (in the order the family's labels were declared).
    pub fn with(&self, values: &[&str]) -> Handle {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let bounds = match self.0.kind {
            Kind::Histogram(b) => b,
            _ => &[],
        };
        let mut series = lock(&self.0.series);
        let s = series.entry(key).or_insert_with(|| {
            Arc::new(Series {
                buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
                ..Default::default()
            })
        });
        Handle {
            series: Arc::clone(s),
            bounds,
        }
    }
}

impl Handle {
    /// Adds to a counter.
    pub fn inc_by(&self, n: u64) {
        self.series.value.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Sets a gauge.
    pub fn set(&self, v: f64) {
        self.series.value.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The current counter value.
    pub fn get(&self) -> u64 {
        self.series.value.load(Ordering::Relaxed)
    }

    /// Records one histogram observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.series.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.series.value.fetch_add(1, Ordering::Relaxed);
        let mut cur = self.series.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self.series.sum.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// Latency buckets in seconds, 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let r = Registry::default();
        let c = r.counter("skein_test_total", "things", &["tenant"]);
        c.with(&["a\"b"]).inc_by(3);
        let h = r.histogram("skein_test_seconds", "time", &[], &[0.1, 1.0]);
        h.with(&[]).observe(0.05);
        h.with(&[]).observe(5.0);
        r.gauge("skein_test_gauge", "g", &[]).with(&[]).set(2.5);
        let text = r.render();
        assert!(
            text.contains("skein_test_total{tenant=\"a\\\"b\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("skein_test_seconds_bucket{le=\"0.1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("skein_test_seconds_bucket{le=\"+Inf\"} 2"),
            "{text}"
        );
        assert!(text.contains("skein_test_seconds_count 2"), "{text}");
        assert!(text.contains("skein_test_gauge 2.5"), "{text}");
    }
}
