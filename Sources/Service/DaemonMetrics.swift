// What lgapd reports to Prometheus, through swift-metrics (so the backend is swappable): jobs by
// status and reason, per-stage latency histograms, queue depths and high-water marks, jobs in
// flight, and the daemon's own counters (results missed by slow subscribers, store errors, acks
// nobody read). Without `[metrics] endpoint` swift-metrics is not bootstrapped and every call is its
// no-op handler's.
import Foundation
import JobModel
import Metrics
import Pipeline
import Prometheus

public final class DaemonMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var jobs: [String: Metrics.Counter] = [:]
    private var stageTimers: [String: Metrics.Timer] = [:]
    private var gauges: [String: Metrics.Gauge] = [:]
    private var synced: [String: (counter: Metrics.Counter, last: Int)] = [:]

    public init() {}

    /// The registry /metrics renders: bootstrapped into swift-metrics once per process.
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Stage latencies span 1 ms (decode) to minutes (a large purification).
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
            .seconds(60), .seconds(300)
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// A job reached a status: at the door (accepted, duplicate, rejected) or at its end (done,
    /// rejected, failed), with its reason.
    public func job(_ status: String, _ reason: ReasonCode?) {
        let dimensions = [("status", status), ("reason", reason?.rawValue ?? "")]
        handle(\.jobs, status + "/" + (reason?.rawValue ?? "")) { Metrics.Counter(label: "lgap_jobs_total", dimensions: dimensions) }.increment()
    }

    /// A finished job's time in each stage (milliseconds, from its result).
    public func stages(_ timingsMs: [String: Double]) {
        for (stage, ms) in timingsMs {
            handle(\.stageTimers, stage) { Metrics.Timer(label: "lgap_stage_duration_seconds", dimensions: [("stage", stage)]) }
                .recordNanoseconds(Int64(ms * 1_000_000))
        }
    }

    public func gauge(_ name: String, _ value: Double, _ dimensions: [(String, String)] = []) {
        let key = name + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        handle(\.gauges, key) { Metrics.Gauge(label: name, dimensions: dimensions) }.record(value)
    }

    /// The metric object for `key`, made once (swift-metrics handles are meant to be kept).
    private func handle<M>(_ cache: ReferenceWritableKeyPath<DaemonMetrics, [String: M]>, _ key: String, make: () -> M) -> M {
        lock.lock()
        defer { lock.unlock() }
        if let m = self[keyPath: cache][key] { return m }
        let m = make()
        self[keyPath: cache][key] = m
        return m
    }

    /// A counter that mirrors one of DaemonState's totals (increments by the difference).
    public func sync(_ name: String, _ total: Int) {
        lock.lock()
        let entry = synced[name] ?? (Metrics.Counter(label: name), 0)
        synced[name] = (entry.counter, max(entry.last, total))
        lock.unlock()
        if total > entry.last { entry.counter.increment(by: total - entry.last) }
    }

    /// Everything sampled rather than counted as it happens (the Monitor calls this every tick).
    public func sample(queues: [StageSnapshot], inFlight: Int, state: DaemonState) {
        for q in queues {
            gauge("lgap_queue_depth", Double(q.depth), [("stage", q.name)])
            gauge("lgap_queue_high_water", Double(q.highWater), [("stage", q.name)])
            gauge("lgap_queue_capacity", Double(q.capacity), [("stage", q.name)])
        }
        gauge("lgap_inflight_jobs", Double(inFlight))
        gauge("lgap_ready", state.ready ? 1 : 0)
        gauge("lgap_draining", state.draining ? 1 : 0)
        sync("lgap_results_published_total", state.published.value)
        sync("lgap_results_dropped_total", state.resultsDropped.value)
        sync("lgap_store_errors_total", state.storeErrors.value)
        sync("lgap_acks_undeliverable_total", state.acksUndeliverable.value)
        sync("lgap_connections_refused_total", state.refusedConnections.value)
    }
}
