// The daemon's long-lived parts and their lifecycle, in the shape of swift-service-lifecycle's
// ServiceGroup but on dedicated threads (the parts block on sockets, queues and CPU work, which
// must never sit on Swift's cooperative pool): each service's `run()` gets its own thread, started
// in order; shutdown calls `stop()` in reverse order and waits for each `run()` to return.
import Foundation
import Logging

public protocol Service: AnyObject, Sendable {
    var name: String { get }
    /// Does the service's work until `stop()`; throwing ends the whole group.
    func run() throws
    /// Asks `run` to return soon (idempotent, never blocks).
    func stop()
    /// How long shutdown waits for this service whatever the group's deadline (work that must not be
    /// cut short, like committing what intake already received); nil: the group's deadline.
    var minimumStopTime: TimeInterval? { get }
}

extension Service {
    public var minimumStopTime: TimeInterval? { nil }
}

public final class ServiceGroup: @unchecked Sendable {
    let services: [Service]
    let log: Logger
    private var threads: [(service: Service, done: DispatchSemaphore)] = []
    private let failure = NSLock()
    private var firstError: Error?
    /// Signalled when any service's run() returns early or throws.
    public let ended = DispatchSemaphore(value: 0)

    public init(_ services: [Service], log: Logger) {
        self.services = services
        self.log = log
    }

    /// Starts every service's run() on its own thread, in order.
    public func start() {
        for s in services {
            let done = DispatchSemaphore(value: 0)
            let t = Thread { [self] in
                do {
                    try s.run()
                } catch {
                    failure.lock(); if firstError == nil { firstError = error }; failure.unlock()
                    log.critical("service failed", metadata: ["service": "\(s.name)", "error": "\(error)"])
                }
                done.signal()
                ended.signal()
            }
            t.name = "lgap-\(s.name)"
            t.stackSize = 8 << 20
            threads.append((s, done))
            t.start()
        }
    }

    /// The error a service ended with, if any.
    public var error: Error? { failure.lock(); defer { failure.unlock() }; return firstError }

    /// Stops the services in reverse order, each waited for until `deadline`. True when all stopped.
    @discardableResult
    public func stop(deadline: Date) -> Bool {
        var all = true
        for (s, done) in threads.reversed() {
            s.stop()
            let wait = max(deadline.timeIntervalSinceNow, s.minimumStopTime ?? 0, 0)
            if done.wait(timeout: .now() + wait) == .timedOut {
                log.warning("service did not stop before the deadline", metadata: ["service": "\(s.name)"])
                all = false
            } else {
                done.signal()  // later waits return at once
            }
        }
        return all
    }
}
