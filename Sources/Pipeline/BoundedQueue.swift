// A blocking FIFO with a fixed capacity (Go's buffered channel): push waits while the queue is full,
// so a slow stage stalls the one before it and, at the front, the ZeroMQ receive loop — which is how
// backpressure reaches producers. Nothing in the pipeline buffers without bound.
import Foundation

public final class BoundedQueue<Element>: @unchecked Sendable {
    public let capacity: Int
    private var items: [Element?]
    private var head = 0
    private var count_ = 0
    private var closed = false
    private var highWater_ = 0
    private let cond = NSCondition()

    public init(capacity: Int) {
        precondition(capacity >= 1, "queue capacity must be at least 1")
        self.capacity = capacity
        items = Array(repeating: nil, count: capacity)
    }

    /// Appends `item`, waiting while the queue is full. Returns false (dropping nothing: the caller
    /// still owns the item) when the queue was closed.
    @discardableResult
    public func push(_ item: Element) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        while count_ == capacity && !closed { cond.wait() }
        if closed { return false }
        items[(head + count_) % capacity] = item
        count_ += 1
        highWater_ = max(highWater_, count_)
        cond.broadcast()
        return true
    }

    /// Up to `max` items: waits for the first; then, for up to `maxWait` seconds, for more (micro-
    /// batching). nil once the queue is closed and empty.
    public func popBatch(max: Int, maxWait: TimeInterval) -> [Element]? {
        cond.lock()
        defer { cond.unlock() }
        while count_ == 0 && !closed { cond.wait() }
        if count_ == 0 { return nil }
        if max > 1 && maxWait > 0 && count_ < max {
            let deadline = Date(timeIntervalSinceNow: maxWait)
            while count_ < max && !closed && cond.wait(until: deadline) {}
        }
        var out: [Element] = []
        let n = Swift.min(max, count_)
        out.reserveCapacity(n)
        for _ in 0..<n {
            out.append(items[head]!)
            items[head] = nil
            head = (head + 1) % capacity
            count_ -= 1
        }
        cond.broadcast()
        return out
    }

    /// No more pushes; poppers drain what is left, then get nil.
    public func close() {
        cond.lock()
        closed = true
        cond.broadcast()
        cond.unlock()
    }

    public var count: Int { cond.lock(); defer { cond.unlock() }; return count_ }
    /// The deepest the queue has been.
    public var highWater: Int { cond.lock(); defer { cond.unlock() }; return highWater_ }
    public var isClosed: Bool { cond.lock(); defer { cond.unlock() }; return closed }
}
