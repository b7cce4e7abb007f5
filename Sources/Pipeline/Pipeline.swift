// A chain of stages: each stage's output is pushed into the next stage's bounded queue, so a slow
// stage stalls the ones before it and, at the front, whoever pushes. The pipeline knows stages, not
// models: the service gives it the stage functions.
//
// Draining (shutdown): close the first queue; each stage finishes what it holds, then the next queue
// is closed, front to back, within one deadline.
import Foundation

/// One stage to build: its name, queue and workers, and what it does to a micro-batch.
public struct StageSpec<Item: Sendable>: Sendable {
    public var name: String
    public var settings: StageSettings
    public var process: @Sendable ([Item]) -> [Item]

    public init(name: String, settings: StageSettings, process: @escaping @Sendable ([Item]) -> [Item]) {
        self.name = name
        self.settings = settings
        self.process = process
    }
}

public final class Pipeline<Item: Sendable>: @unchecked Sendable {
    public let stages: [Stage<Item>]

    /// Builds the chain; the last stage's output is dropped (make it the sink, e.g. the recorder).
    public init(_ specs: [StageSpec<Item>]) {
        precondition(!specs.isEmpty, "a pipeline needs at least one stage")
        var built: [Stage<Item>] = []
        var next: Stage<Item>? = nil
        for spec in specs.reversed() {
            let target = next
            let stage = Stage<Item>(
                name: spec.name, settings: spec.settings, process: spec.process,
                emit: { item in target?.queue.push(item) })
            built.insert(stage, at: 0)
            next = stage
        }
        stages = built
    }

    public func start() { for s in stages { s.start() } }

    /// Appends to the first stage, waiting while it is full; false once the pipeline is closed.
    @discardableResult
    public func push(_ item: Item) -> Bool { stages[0].queue.push(item) }

    /// No more pushes; what is inside still flows to the end (see `drain`).
    public func close() { stages[0].queue.close() }

    /// Closes the pipeline and lets every stage finish what it holds, front to back. True when all
    /// stages stopped before `deadline`; false leaves the rest running (the caller exits anyway).
    public func drain(deadline: Date) -> Bool {
        close()
        for (i, stage) in stages.enumerated() {
            guard stage.join(timeout: max(0, deadline.timeIntervalSinceNow)) else { return false }
            if i + 1 < stages.count { stages[i + 1].queue.close() }
        }
        return true
    }

    /// Items waiting in all queues (not counting micro-batches being processed).
    public var queued: Int { stages.reduce(0) { $0 + $1.queue.count } }

    /// Per stage: name, queue depth and capacity, its deepest, items processed.
    public var snapshot: [StageSnapshot] {
        stages.map {
            StageSnapshot(
                name: $0.name, depth: $0.queue.count, capacity: $0.settings.capacity,
                highWater: $0.queue.highWater, processed: $0.processed, busySeconds: $0.busySeconds)
        }
    }
}

public struct StageSnapshot: Sendable, Equatable {
    public var name: String
    public var depth: Int
    public var capacity: Int
    public var highWater: Int
    public var processed: Int
    public var busySeconds: Double
}
