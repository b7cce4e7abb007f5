// The pipeline's last stage: writes each micro-batch's results in one store transaction, then
// publishes the results that write finished (only after the row is committed, and only by the write
// that finished the job — so restarts and takeovers never publish a result twice).
//
// Publishing never blocks and never goes silently missing: the results socket is an XPUB with
// NODROP, so a send that some subscriber has no room for fails instead of being dropped unseen. Such a
// result is counted (results_dropped) and logged, then sent again with NODROP off, which delivers it to
// every subscriber that has room. The store is the record: a subscriber that fell behind catches up
// with `lgapctl history --since`.
import Foundation
import JobModel
import JobProcessing
import Logging
import Messaging
import Provenance

public final class Recorder: @unchecked Sendable {
    let gate: StoreGate
    let node: String
    let runID: Int64
    let stages: [StageName]
    let socket: ZMQSocket
    let feeder: () -> Feeder?
    let state: DaemonState
    let log: Logger
    let publishNode: Bool
    var stopping: () -> Bool = { false }
    private var lastDropLog = Date.distantPast
    private var dropsSinceLog = 0

    public init(
        gate: StoreGate, node: String, run: Int64, stages: [StageName], socket: ZMQSocket, publishNode: Bool,
        feeder: @escaping () -> Feeder?, state: DaemonState, log: Logger
    ) {
        self.gate = gate
        self.node = node
        self.runID = run
        self.stages = stages
        self.socket = socket
        self.publishNode = publishNode
        self.feeder = feeder
        self.state = state
        self.log = log
    }

    /// The record stage's function.
    public func record(_ items: [JobItem]) -> [JobItem] {
        state.beat()
        let results = items.map { $0.result(stages: stages, node: publishNode ? node : nil) }
        let finished: [Bool]
        do {
            finished = try gate.retrying("record results", giveUp: stopping) { try $0.finish(results, run: runID, node: node) }
        } catch {
            // Only when stopping with the store still down: the jobs stay unfinished in the store and
            // run again on the next start.
            for item in items { log.error("result not recorded", metadata: ["job": "\(item.id)", "error": "\(error)"]) }
            feeder()?.recorded(items.map(\.id))
            return items
        }
        feeder()?.recorded(items.map(\.id))
        for (item, (result, first)) in zip(items, zip(results, finished)) {
            guard first else {
                log.notice("result not published: the job was finished elsewhere", metadata: ["job": "\(item.id)"])
                continue
            }
            state.finished.add()
            state.metrics.job(result.status.rawValue, result.failure?.reason)
            state.metrics.stages(result.timingsMs)
            publish(result)
            if let f = result.failure {
                log.notice(
                    "job \(f.status.rawValue)",
                    metadata: [
                        "job": "\(item.id)", "reason": "\(f.reason.rawValue)",
                        "error": "\(Sanitize.text(f.message))"
                    ])
            } else {
                log.debug("job done", metadata: ["job": "\(item.id)", "label": "\(result.label ?? "-")"])
            }
        }
        drainSubscriptions()
        return items
    }

    private func publish(_ r: JobResult) {
        let frames = [Array("result".utf8), r.json]
        do {
            if try socket.trySend(frames) {
                state.published.add()
                return
            }
            // Some subscriber has no room: count it, then deliver to everyone who has.
            state.resultsDropped.add()
            dropsSinceLog += 1
            if Date().timeIntervalSince(lastDropLog) > 10 {
                log.warning(
                    "a slow subscriber missed results (the store has them: lgapctl history --since)",
                    metadata: ["missed_since_last_warning": "\(dropsSinceLog)", "total": "\(state.resultsDropped.value)"])
                lastDropLog = Date()
                dropsSinceLog = 0
            }
            try socket.setXPubNoDrop(false)
            _ = try socket.trySend(frames)
            try socket.setXPubNoDrop(true)
            state.published.add()
        } catch {
            log.warning("result not published", metadata: ["job": "\(r.id)", "error": "\(error)"])
        }
    }

    /// XPUB hands us the subscribers' (un)subscribe messages; read them so they never pile up.
    private func drainSubscriptions() {
        while (try? socket.receive(timeoutMs: 0, maxFrames: 1)) ?? nil != nil {}
    }
}
