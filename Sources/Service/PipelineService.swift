// The stage pipeline as a service: run() starts the stage threads and, once asked to stop, drains
// them front to back within the shutdown deadline.
import Foundation
import JobProcessing
import Logging
import Pipeline

public final class PipelineService: Service, @unchecked Sendable {
    public let name = "pipeline"
    public let pipeline: Pipeline<JobItem>
    let drainTimeout: TimeInterval
    let log: Logger
    private let stopRequested = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var deadline = Date.distantFuture
    private var drained_ = false
    /// Every stage finished what it held before the deadline.
    public var drained: Bool { lock.withLock { drained_ } }

    public init(pipeline: Pipeline<JobItem>, drainTimeout: TimeInterval, log: Logger) {
        self.pipeline = pipeline
        self.drainTimeout = drainTimeout
        self.log = log
    }

    public func stop() {
        lock.lock()
        if deadline == .distantFuture { deadline = Date(timeIntervalSinceNow: drainTimeout) }
        lock.unlock()
        stopRequested.signal()
    }

    /// Past the drain deadline: whoever still waits on the store gives up.
    public var pastDeadline: Bool { lock.lock(); defer { lock.unlock() }; return Date() > deadline }

    public func run() throws {
        pipeline.start()
        stopRequested.wait()
        let d = lock.withLock { deadline }
        let ok = pipeline.drain(deadline: d)
        lock.withLock { drained_ = ok }
        if !ok { log.warning("stages not drained before the deadline; unfinished jobs stay in the store for the next start") }
    }
}
