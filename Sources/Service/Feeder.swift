// The only way into the pipeline. The store is the durable queue: ingest commits jobs, the feeder
// claims this node's accepted jobs oldest first and pushes them into the stages while the pipeline
// has room (a job count) and the in-flight memory budget allows.
//
// Poison isolation: a job that was inside a model stage when a daemon died is a suspect. Suspects run
// alone — the feeder waits until the pipeline is empty, claims one suspect (which counts an attempt),
// and waits for it to be recorded before anything else enters. A suspect that the daemon did not
// survive `max_attempts` times alone is failed (too_many_attempts) without running again; every other
// job, innocent neighbours included, runs normally. So only the real poison job fails.
//
// Fleet: every lease/2 the feeder takes over the unfinished jobs of nodes whose heartbeat lapsed.
import Foundation
import JobModel
import JobProcessing
import Logging
import Pipeline
import Provenance

public final class Feeder: Service, @unchecked Sendable {
    public let name = "feeder"
    let gate: StoreGate
    let node: String
    let pipeline: Pipeline<JobItem>
    let stages: [StageName]
    let capacity: Int
    let batch: Int
    let budget: Int64
    let maxAttempts: Int
    let lease: TimeInterval?
    let state: DaemonState
    let log: Logger
    let costModel: CostModel

    private let cond = NSCondition()
    private var stopped = false
    private var wakeups = 0
    private var inFlight: [String: Int64] = [:]
    private var inFlightBytes: Int64 = 0
    private var suspectsPending = true
    private var claimed = 0
    /// Claimed jobs waiting for the memory budget.
    private var waiting: [JobItem] = []

    /// Accepted jobs not yet claimed (ingest's backlog, counted from commits and claims).
    private var backlog = 0

    public init(
        gate: StoreGate, node: String, pipeline: Pipeline<JobItem>, stages: [StageName], capacity: Int, batch: Int,
        budget: Int64, maxAttempts: Int, lease: TimeInterval?, costModel: CostModel, state: DaemonState, log: Logger
    ) {
        self.gate = gate
        self.node = node
        self.pipeline = pipeline
        self.stages = stages
        self.capacity = capacity
        self.batch = batch
        self.budget = budget
        self.maxAttempts = maxAttempts
        self.lease = lease
        self.costModel = costModel
        self.state = state
        self.log = log
    }

    // MARK: Signals from the other parts

    /// Ingest committed a job.
    public func accepted() {
        cond.lock(); backlog += 1; wakeups += 1; cond.broadcast(); cond.unlock()
    }

    /// The recorder wrote these jobs' results: they leave the pipeline.
    public func recorded(_ ids: [String]) {
        cond.lock()
        for id in ids { if let b = inFlight.removeValue(forKey: id) { inFlightBytes -= b } }
        wakeups += 1
        cond.broadcast()
        cond.unlock()
    }

    /// Accepted jobs not yet claimed, as ingest sees them (it pauses reading above max_backlog).
    public func waitForBacklog(below limit: Int, timeout: TimeInterval) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        if backlog < limit { return true }
        _ = cond.wait(until: Date(timeIntervalSinceNow: timeout))
        return backlog < limit
    }

    public var inFlightCount: Int { cond.lock(); defer { cond.unlock() }; return inFlight.count }
    public var inFlightMemory: Int64 { cond.lock(); defer { cond.unlock() }; return inFlightBytes }

    public func stop() {
        cond.lock(); stopped = true; cond.broadcast(); cond.unlock()
    }

    /// Claims and the daemon's final release of unfinished jobs exclude each other: after `close()`
    /// no claim can start, and none is half done, so a released job stays released.
    private let claimFence = NSLock()
    private var closed = false

    public func close() {
        stop()
        claimFence.lock(); closed = true; claimFence.unlock()
    }

    private func fenced(_ claim: () throws -> [JobRecord]) throws -> [JobRecord] {
        claimFence.lock()
        defer { claimFence.unlock() }
        return closed ? [] : try claim()
    }

    private var isStopped: Bool { cond.lock(); defer { cond.unlock() }; return stopped }

    /// Waits for a signal (or the timeout); false once stopped.
    private func sleep(_ timeout: TimeInterval, until condition: () -> Bool = { false }) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        let seen = wakeups
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !stopped && wakeups == seen && !condition() {
            if !cond.wait(until: deadline) { break }
        }
        return !stopped
    }

    // MARK: The loop

    public func run() throws {
        var lastSweep = Date.distantPast
        while !isStopped {
            if let lease, Date().timeIntervalSince(lastSweep) >= lease / 2 {
                lastSweep = Date()
                takeOver(lease: lease)
            }
            if suspects() { continue }
            if !pushWaiting() { continue }
            let room = cond.withLock { capacity - inFlight.count }
            guard room > 0 else { _ = sleep(1); continue }
            let records: [JobRecord]
            do {
                records = try fenced {
                    try gate.retrying("claim jobs", giveUp: { self.isStopped }) { try $0.claim(node: node, limit: min(room, batch), isolated: false) }
                }
            } catch {
                if !isStopped { log.error("cannot claim jobs", metadata: ["error": "\(error)"]) }
                _ = sleep(1)
                continue
            }
            cond.withLock {
                backlog = max(0, backlog - records.count); claimed += records.count; cond.broadcast()
            }
            if records.isEmpty {
                // Nothing to claim: look again when ingest commits, or now and then for jobs that arrived
                // another way (lgapctl retry, a takeover, suspects after recovery).
                if !sleep(1) { break }
                refreshBacklog()
                continue
            }
            waiting += records.map { item($0) }
            _ = pushWaiting()
        }
    }

    /// Pushes claimed jobs while the budget allows (one at a time when the pipeline is empty, so a
    /// job larger than what is free still runs). False when some are still waiting.
    private func pushWaiting() -> Bool {
        while let next = waiting.first {
            let fits = cond.withLock { () -> Bool in
                guard inFlight.isEmpty || inFlightBytes + Int64(next.memoryBytes) <= budget else { return false }
                inFlight[next.id] = Int64(next.memoryBytes)
                inFlightBytes += Int64(next.memoryBytes)
                return true
            }
            guard fits else {
                _ = sleep(1)
                return false
            }
            waiting.removeFirst()
            if !pipeline.push(next) { return false }
        }
        return true
    }

    private func item(_ r: JobRecord, isolated: Bool = false) -> JobItem {
        let memory = costModel.memoryBytes(r.params, width: r.width, height: r.height)
        return JobItem(
            id: r.id, input: r.input.map { [UInt8]($0) } ?? [], format: r.inputFormat, parameters: r.params,
            inputSHA256: r.inputSha256, seq: r.seq, memoryBytes: Int(memory), isolated: isolated)
    }

    /// Runs one suspect alone if any is waiting; true when it did (or waited for the pipeline).
    private func suspects() -> Bool {
        guard cond.withLock({ suspectsPending }) else { return false }
        // Alone means alone: let everything in flight finish first.
        if !waiting.isEmpty {
            _ = pushWaiting()
            return true
        }
        guard cond.withLock({ inFlight.isEmpty }) else {
            _ = sleep(1, until: { inFlight.isEmpty })
            return true
        }
        let records: [JobRecord]
        do {
            records = try fenced { try gate.retrying("claim a suspect", giveUp: { self.isStopped }) { try $0.claim(node: node, limit: 1, isolated: true) } }
        } catch {
            _ = sleep(1)
            return true
        }
        guard let r = records.first else {
            cond.withLock { suspectsPending = false }
            return false
        }
        let it = item(r, isolated: true)
        if r.attempts > maxAttempts {
            it.failure = .failed(
                .tooManyAttempts,
                "lgapd died \(r.attempts - 1) times while this job ran alone (max_attempts = \(maxAttempts)); not run again")
            log.error("poison job failed", metadata: ["job": "\(r.id)", "attempts": "\(r.attempts - 1)"])
        } else {
            log.notice("running a suspect alone", metadata: ["job": "\(r.id)", "attempt": "\(r.attempts)", "max_attempts": "\(maxAttempts)"])
        }
        cond.withLock {
            inFlight[it.id] = Int64(it.memoryBytes)
            inFlightBytes += Int64(it.memoryBytes)
        }
        _ = pipeline.push(it)
        // Wait until it is recorded before anything else enters.
        while !isStopped && cond.withLock({ inFlight[it.id] != nil }) { _ = sleep(1) }
        return true
    }

    private func refreshBacklog() {
        guard let b = try? gate.store.backlog(node: node) else { return }
        cond.withLock {
            backlog = b.normal + b.suspects
            if b.suspects > 0 { suspectsPending = true }
        }
    }

    private func takeOver(lease: TimeInterval) {
        do {
            let moved = try gate.store.takeOver(node: node, lease: lease, limit: 10_000)
            if moved > 0 {
                log.notice("took over jobs of a node whose lease lapsed", metadata: ["jobs": "\(moved)"])
                refreshBacklog()
            }
        } catch {
            log.warning("takeover check failed", metadata: ["error": "\(error)"])
        }
    }
}
