// One pipeline stage: a bounded input queue served by a fixed number of long-lived worker threads.
// Each worker takes a micro-batch (up to maxBatch items, waiting at most maxWait for it to fill),
// processes it and hands every item to `emit` (usually the next stage's push, which blocks when that
// stage is full). Closing the input lets the workers drain it and stop; `join` waits for them.
import Foundation

public struct StageSettings: Sendable, Equatable {
    public var capacity: Int
    public var workers: Int
    public var maxBatch: Int
    public var maxWait: TimeInterval

    public init(capacity: Int, workers: Int, maxBatch: Int = 1, maxWait: TimeInterval = 0) {
        self.capacity = capacity
        self.workers = workers
        self.maxBatch = maxBatch
        self.maxWait = maxWait
    }
}

public final class Stage<Item: Sendable>: @unchecked Sendable {
    public let name: String
    public let settings: StageSettings
    public let queue: BoundedQueue<Item>
    private let process: @Sendable ([Item]) -> [Item]
    private let emit: @Sendable (Item) -> Void
    private var threads: [Thread] = []
    private let done = DispatchGroup()
    private let lock = NSLock()
    private var processed_ = 0
    private var busy_: TimeInterval = 0

    public init(
        name: String, settings: StageSettings, process: @escaping @Sendable ([Item]) -> [Item],
        emit: @escaping @Sendable (Item) -> Void
    ) {
        precondition(settings.workers >= 1 && settings.maxBatch >= 1, "stage \(name) needs at least one worker and batch size 1")
        self.name = name
        self.settings = settings
        self.queue = BoundedQueue(capacity: settings.capacity)
        self.process = process
        self.emit = emit
    }

    public func start() {
        for i in 0..<settings.workers {
            done.enter()
            let t = Thread { [self] in
                defer { done.leave() }
                while let batch = queue.popBatch(max: settings.maxBatch, maxWait: settings.maxWait) {
                    let t0 = Date()
                    let out = process(batch)
                    let dt = Date().timeIntervalSince(t0)
                    lock.lock(); processed_ += batch.count; busy_ += dt; lock.unlock()
                    for item in out { emit(item) }
                }
            }
            t.name = "lgap-\(name)-\(i)"
            t.stackSize = 8 << 20
            threads.append(t)
            t.start()
        }
    }

    /// Blocks until every worker has drained the closed queue and stopped.
    public func join() { done.wait() }

    /// Waits at most `timeout`; true when the workers stopped.
    public func join(timeout: TimeInterval) -> Bool { done.wait(timeout: .now() + timeout) == .success }

    public var processed: Int { lock.lock(); defer { lock.unlock() }; return processed_ }
    public var busySeconds: TimeInterval { lock.lock(); defer { lock.unlock() }; return busy_ }
}
