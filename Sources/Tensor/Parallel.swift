// Work splitting for loops the engine runs itself (BLAS threads its own GEMMs).
import Dispatch
import Foundation

public enum Engine {
    /// Worker count for engine-owned loops; defaults to the machine's active cores.
    nonisolated(unsafe) public static var threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)
}

/// Runs `body` over `0..<count` split into contiguous ranges on up to `Engine.threads` workers,
/// keeping each range at least `grain` long so small loops stay on the calling thread.
@inlinable
public func parallelRanges(_ count: Int, grain: Int, _ body: @Sendable (Range<Int>) -> Void) {
    let workers = min(Engine.threads, max(1, count / max(grain, 1)))
    if workers <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    let chunk = (count + workers - 1) / workers
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        let lo = w * chunk
        let hi = min(count, lo + chunk)
        if lo < hi { body(lo..<hi) }
    }
}

/// Sendable wrapper for raw pointers handed to concurrent workers (each worker touches its own range).
public struct SendablePointer<T>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<T>
    @inlinable public init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
    @inlinable public init(_ pointer: UnsafePointer<T>) { self.pointer = UnsafeMutablePointer(mutating: pointer) }
}
