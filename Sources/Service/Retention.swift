// The daemon's retention policy ([store] retain_days, retain_rejected_days, keep_inputs) as the prune
// requests it makes of the store, and the sweep that applies them in small batches: a few hundred
// rows per transaction, a bounded number per sweep, so intake's commits never wait long and a
// backlog of years is worked off over several sweeps.
import Foundation
import JobModel
import Provenance

public struct Retention: Sendable, Equatable {
    public var retainDays: Double
    public var retainRejectedDays: Double
    public var keepInputs: Bool

    public init(retainDays: Double, retainRejectedDays: Double, keepInputs: Bool) {
        self.retainDays = retainDays
        self.retainRejectedDays = retainRejectedDays
        self.keepInputs = keepInputs
    }

    public init(_ c: DaemonConfig) { self.init(retainDays: c.retainDays, retainRejectedDays: c.retainRejectedDays, keepInputs: c.keepInputs) }

    public var isActive: Bool { retainDays > 0 || retainRejectedDays > 0 || !keepInputs }

    /// What to prune at `now`, in batches of `batch` rows.
    public func requests(now: Date, batch: Int) -> [PruneRequest] {
        var out: [PruneRequest] = []
        let day: TimeInterval = 86_400
        if retainDays > 0 {
            out.append(PruneRequest(before: now - retainDays * day, statuses: [.done, .failed], action: .deleteRows, limit: batch))
        }
        if retainRejectedDays > 0 {
            out.append(PruneRequest(before: now - retainRejectedDays * day, statuses: [.rejected], action: .deleteRows, limit: batch))
        }
        if !keepInputs {
            out.append(PruneRequest(before: now, statuses: [.done, .rejected, .failed], action: .dropInputs, limit: batch))
        }
        return out
    }

    /// One sweep: each request until it changes nothing or `maxBatches` batches ran. Rows changed.
    public func sweep(_ store: JobStore, now: Date = Date(), batch: Int = 500, maxBatches: Int = 20) throws -> Int {
        var total = 0
        for r in requests(now: now, batch: batch) {
            for _ in 0..<maxBatches {
                let n = try store.prune(r)
                total += n
                if n < batch { break }
            }
        }
        return total
    }
}
