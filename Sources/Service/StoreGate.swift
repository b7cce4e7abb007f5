// Store calls that must survive a passing outage (disk full, database restarting): retried with
// exponential backoff while the store is `unavailable`, the daemon reported not-ready meanwhile and
// ready again at the first success — no restart needed. Errors that will not pass are thrown at once.
import Foundation
import Logging
import Provenance

public struct StoreGate: Sendable {
    public let store: JobStore
    let state: DaemonState
    let log: Logger

    public init(store: JobStore, state: DaemonState, log: Logger) {
        self.store = store
        self.state = state
        self.log = log
    }

    /// Runs `body`, retrying while the store is unavailable, until `giveUp()` says to stop or the
    /// deadline passes (then the last error is thrown).
    public func retrying<T>(
        _ what: String, deadline: Date = .distantFuture, giveUp: () -> Bool = { false },
        _ body: (JobStore) throws -> T
    ) throws -> T {
        var delay = 0.05
        var logged = Date.distantPast
        while true {
            do {
                let r = try body(store)
                if state.storeError != nil {
                    state.storeRecovered()
                    log.notice("store available again", metadata: ["while": "\(what)"])
                }
                return r
            } catch let e as StoreError where e.isUnavailable {
                state.storeFailed(e.description)
                state.storeErrors.add()
                if Date().timeIntervalSince(logged) > 10 {
                    logged = Date()
                    log.error("store unavailable; retrying", metadata: ["while": "\(what)", "error": "\(e)"])
                }
                if giveUp() || Date().addingTimeInterval(delay) > deadline { throw e }
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 2)
            }
        }
    }

    /// One attempt; an unavailable store marks the daemon not-ready and is thrown.
    public func once<T>(_ what: String, _ body: (JobStore) throws -> T) throws -> T {
        try retrying(what, deadline: .distantPast, body)
    }
}
