// The one record type of a job, as the store keeps it: what was accepted (input, parameters fixed
// at acceptance, the seed included), where it is (status, stage, node), and what came out. Both
// stores (SQLite, PostgreSQL) read and write exactly this type; JSON-valued columns are the nested
// Codable values.
import Foundation
import ImageIO
import Models

public struct JobRecord: Codable, Sendable, Equatable {
    /// Acceptance order (the store assigns it): the durable queue's order.
    public var seq: Int64?
    public var id: String
    public var status: JobStatus
    public var reason: ReasonCode?
    public var error: String?
    /// The node that owns (and runs) the job; a takeover moves it to the survivor.
    public var node: String
    public var receivedAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// The run that accepted it, and the run that finished it.
    public var runId: Int64?
    public var finishedRunId: Int64?
    /// Runs of this job alone (isolation) that the daemon did not survive.
    public var attempts: Int
    /// Was inside a model stage when its daemon died: runs alone before it may batch again.
    public var suspect: Bool
    /// The model stage it is inside while processing.
    public var stage: StageName?
    public var mode: IngestMode
    public var peer: String?
    public var inputSha256: String
    public var inputFormat: ImageFormat
    public var inputSize: Int
    public var width: Int
    public var height: Int
    /// The input bytes (nil in list queries, which do not load blobs).
    public var input: Data?
    /// Ground truth, for evaluation only; never shown to the pipeline.
    public var label: String?
    /// The header's meta object, re-serialised with sorted keys.
    public var meta: String?
    public var requestedParams: JobParams?
    /// Effective parameters, seed included: a resumed or replayed job runs exactly as it would have.
    public var params: PurificationParameters
    /// Admission cost (see CostModel): pixel-steps the job may spend.
    public var cost: Int64
    // What came out.
    public var stagesRun: [StageName]?
    public var caption: String?
    public var captionTokens: [Int]?
    public var captionScore: Double?
    public var purifiedSha256: String?
    public var purified: Data?
    public var predLabel: String?
    public var predIndex: Int?
    public var confidence: Double?
    public var topK: [RankedClass]?
    public var consistency: Consistency?
    /// Milliseconds per stage.
    public var timings: [String: Double]?

    public init(
        id: String, node: String, receivedAt: Date, runId: Int64?, mode: IngestMode, peer: String?, input: [UInt8],
        inputSha256: String, inputFormat: ImageFormat, width: Int, height: Int, label: String?, meta: String?,
        requestedParams: JobParams?, params: PurificationParameters, cost: Int64
    ) {
        self.id = id
        status = .accepted
        self.node = node
        self.receivedAt = receivedAt
        self.runId = runId
        attempts = 0
        suspect = false
        self.mode = mode
        self.peer = peer
        self.input = Data(input)
        self.inputSha256 = inputSha256
        self.inputFormat = inputFormat
        inputSize = input.count
        self.width = width
        self.height = height
        self.label = label
        self.meta = meta
        self.requestedParams = requestedParams
        self.params = params
        self.cost = cost
    }

    /// The failure, when the job was rejected or failed.
    public var failure: JobFailure? {
        guard status == .rejected || status == .failed, let reason else { return nil }
        return JobFailure(status, reason, error ?? "")
    }
}

/// A message refused at the door: recorded on its own row (refusals never become jobs, and two
/// refusals claiming the same id are two rows).
public struct RefusalRecord: Codable, Sendable, Equatable {
    public var seq: Int64?
    /// The id the header claimed, when it had a valid one.
    public var claimedId: String?
    public var reason: ReasonCode
    public var error: String
    public var node: String
    public var receivedAt: Date
    public var runId: Int64?
    public var mode: IngestMode
    public var peer: String?
    public var inputSha256: String?
    public var inputSize: Int?
    /// The header's first KiB, control characters escaped.
    public var header: String?

    public init(
        claimedId: String?, reason: ReasonCode, error: String, node: String, receivedAt: Date, runId: Int64?,
        mode: IngestMode, peer: String?, inputSha256: String?, inputSize: Int?, header: String?
    ) {
        self.claimedId = claimedId
        self.reason = reason
        self.error = error
        self.node = node
        self.receivedAt = receivedAt
        self.runId = runId
        self.mode = mode
        self.peer = peer
        self.inputSha256 = inputSha256
        self.inputSize = inputSize
        self.header = header
    }
}
