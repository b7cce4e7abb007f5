// Reports the daemon's health: the node's heartbeat in the store (its lease in a fleet), stage
// statistics, systemd's STATUS= and WATCHDOG=1 (only while some thread makes progress or there is
// nothing to do).
import Foundation
import JobModel
import JobProcessing
import Logging
import Pipeline
import Provenance

public final class Monitor: Service, @unchecked Sendable {
    public let name = "monitor"
    let gate: StoreGate
    let node: String
    let runID: Int64
    let host = ProcessInfo.processInfo.hostName
    let pipeline: Pipeline<JobItem>
    let feeder: Feeder
    let notifier: SystemdNotifier
    let state: DaemonState
    let log: Logger
    let heartbeatInterval: TimeInterval
    let statusInterval: TimeInterval
    let endpoint: String
    let retention: Retention
    /// Seconds between retention sweeps.
    let retentionInterval: TimeInterval
    private let stopped = DispatchSemaphore(value: 0)

    public init(
        gate: StoreGate, node: String, run: Int64, pipeline: Pipeline<JobItem>, feeder: Feeder, notifier: SystemdNotifier,
        state: DaemonState, log: Logger, heartbeatInterval: TimeInterval, statusInterval: TimeInterval, endpoint: String,
        retention: Retention = Retention(retainDays: 0, retainRejectedDays: 0, keepInputs: true), retentionInterval: TimeInterval = 60
    ) {
        self.gate = gate
        self.node = node
        self.runID = run
        self.pipeline = pipeline
        self.feeder = feeder
        self.notifier = notifier
        self.state = state
        self.log = log
        self.heartbeatInterval = heartbeatInterval
        self.statusInterval = statusInterval
        self.endpoint = endpoint
        self.retention = retention
        self.retentionInterval = retentionInterval
    }

    public func stop() { stopped.signal() }

    public func run() throws {
        let tick = min(heartbeatInterval, statusInterval, notifier.watchdogInterval.map { $0 / 2 } ?? .infinity)
        var lastBeat = Date.distantPast, lastStatus = Date.distantPast, lastSweep = Date.distantPast
        var wasReady = true
        var started = false
        repeat {
            let now = Date()
            if now.timeIntervalSince(lastBeat) >= heartbeatInterval {
                lastBeat = now
                beat()
            }
            if now.timeIntervalSince(lastStatus) >= statusInterval {
                lastStatus = now
                flushStats()
                notifier.notify("STATUS=" + status)
            }
            if retention.isActive && now.timeIntervalSince(lastSweep) >= retentionInterval {
                lastSweep = now
                sweepRetention()
            }
            state.metrics.sample(queues: pipeline.snapshot, inFlight: feeder.inFlightCount, state: state)
            let ready = state.ready
            started = started || state.ingestRunning
            if started && ready != wasReady && !state.draining {
                log.notice(ready ? "ready again" : "not ready", metadata: ["reasons": "\(state.notReadyReasons.joined(separator: "; "))"])
                notifier.notify("STATUS=" + status)
                wasReady = ready
            }
            // Healthy: some thread made progress recently, or there is nothing to do.
            if let wd = notifier.watchdogInterval, Date().timeIntervalSince(state.heartbeat) < wd || feeder.inFlightCount == 0 {
                notifier.notify("WATCHDOG=1")
            }
        } while stopped.wait(timeout: .now() + tick) == .timedOut
        flushStats()
        beat()
    }

    var status: String {
        let depth = pipeline.snapshot.map { "\($0.name) \($0.depth)/\($0.capacity)" }.joined(separator: ", ")
        let readiness = state.ready ? "serving on \(endpoint)" : "NOT READY (\(state.notReadyReasons.joined(separator: "; ")))"
        return "\(readiness); \(state.finished.value) finished, \(state.published.value) published, "
            + "\(state.resultsDropped.value) missed by slow subscribers; queues: \(depth)"
    }

    private func beat() {
        let b = NodeHeartbeat(
            node: node, run: runID, host: host, pid: getpid(), state: state.summary, running: feeder.inFlightCount,
            finished: state.finished.value)
        do { try gate.once("heartbeat") { try $0.heartbeat(b) } } catch {
            log.warning("heartbeat not recorded", metadata: ["error": "\(error)"])
        }
    }

    private func sweepRetention() {
        do {
            let n = try gate.once("retention") { try retention.sweep($0) }
            if n > 0 { log.info("retention", metadata: ["rows": "\(n)"]) }
        } catch {
            log.warning("retention sweep failed", metadata: ["error": "\(error)"])
        }
    }

    func flushStats() {
        let stats = pipeline.snapshot.map { StageStat(runId: runID, stage: $0.name, capacity: $0.capacity, highWater: $0.highWater, processed: $0.processed) }
        try? gate.store.updateStageStats(run: runID, stages: stats)
    }
}
