// What the daemon's parts tell each other and the outside: readiness (pack loaded, store writable,
// ingest running, not draining), the liveness heartbeat, and the counters the monitor reports
// (STATUS=, lgapctl nodes, metrics).
import Foundation

public final class DaemonState: @unchecked Sendable {
    private let lock = NSLock()
    private var storeError_: String?
    private var ingestRunning_ = false
    private var draining_ = false
    private var heartbeat_ = Date()

    public init() {}

    private func locked<T>(_ body: () -> T) -> T { lock.lock(); defer { lock.unlock() }; return body() }

    /// Some thread made progress (the watchdog and /livez read this).
    public func beat() { locked { heartbeat_ = Date() } }
    public var heartbeat: Date { locked { heartbeat_ } }

    public func storeRecovered() { locked { storeError_ = nil } }
    public func storeFailed(_ message: String) { locked { storeError_ = message } }
    public var storeError: String? { locked { storeError_ } }

    public var ingestRunning: Bool {
        get { locked { ingestRunning_ } }
        set { locked { ingestRunning_ = newValue } }
    }

    public var draining: Bool {
        get { locked { draining_ } }
        set { locked { draining_ = newValue } }
    }

    /// Ready for new work: the store writes, ingest runs, no shutdown under way.
    public var ready: Bool { locked { storeError_ == nil && ingestRunning_ && !draining_ } }

    /// Why not ready (empty when ready).
    public var notReadyReasons: [String] {
        locked {
            var r: [String] = []
            if let e = storeError_ { r.append("store unavailable: \(e)") }
            if !ingestRunning_ { r.append("ingest not running") }
            if draining_ { r.append("draining") }
            return r
        }
    }

    /// "ready", "draining" or "not_ready" (the nodes table's state).
    public var summary: String { draining ? "draining" : (ready ? "ready" : "not_ready") }

    // Counters.
    public let accepted = Counter(), duplicates = Counter(), refused = Counter(), published = Counter()
    public let resultsDropped = Counter(), acksUndeliverable = Counter(), storeErrors = Counter(), refusedConnections = Counter()
    public let finished = Counter()
    /// Prometheus's view of the same events (no-ops unless [metrics] endpoint is set).
    public let metrics = DaemonMetrics()
}

/// A thread-safe counter.
public final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    public init() {}
    public func add(_ k: Int = 1) { lock.lock(); n += k; lock.unlock() }
    public var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
