// Where a job stands. The store's `status` column, the result message's "status" and `lgapctl
// history --status` all speak this one enum.

/// A job's lifecycle: accepted (committed, waiting) → processing (inside a model stage) → done,
/// or rejected (bad input) / failed (could not complete). Refusals at the door are recorded apart
/// (`RefusalRecord`) and are never jobs.
public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case accepted, processing, done, rejected, failed

    /// done, rejected and failed never change again (until an operator re-queues a failed job).
    public var isFinal: Bool { self == .done || self == .rejected || self == .failed }
}

/// How a job entered the system: a ZeroMQ ingest mode, or `lgapctl replay`.
public enum IngestMode: String, Codable, Sendable, CaseIterable {
    /// Producers PUSH; no replies; backpressure through the high-water mark.
    case pull
    /// Producers DEALER/REQ; each job is acknowledged once committed.
    case router
    /// Re-run of a stored job.
    case replay
}
