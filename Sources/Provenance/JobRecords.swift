// What the store records: an accepted job as it arrives, the outcome of processing it, and the rows
// operators read back.
import Foundation
import GRDB

/// A job as ingest accepted it (input bytes included, so it survives restarts and can be replayed).
public struct NewJob: Sendable {
    public var id: String
    public var receivedAt: Date
    public var mode: String
    public var peer: String?
    public var input: [UInt8]
    public var inputFormat: String
    public var width: Int
    public var height: Int
    public var label: String?
    public var meta: String?
    public var requestedParams: String?
    /// Effective purification parameters, fixed at acceptance so a resumed job runs exactly as it
    /// would have (the seed included).
    public var strength: Double, steps: Int, guidance: Double, eta: Double, ensemble: Int, seed: Int64

    public init(id: String, receivedAt: Date, mode: String, peer: String?, input: [UInt8], inputFormat: String, width: Int, height: Int,
                label: String?, meta: String?, requestedParams: String?, strength: Double, steps: Int, guidance: Double, eta: Double,
                ensemble: Int, seed: Int64) {
        self.id = id; self.receivedAt = receivedAt; self.mode = mode; self.peer = peer; self.input = input
        self.inputFormat = inputFormat; self.width = width; self.height = height; self.label = label; self.meta = meta
        self.requestedParams = requestedParams
        self.strength = strength; self.steps = steps; self.guidance = guidance; self.eta = eta; self.ensemble = ensemble; self.seed = seed
    }
}

/// The pipeline's result for a job.
public struct JobOutcome: Sendable {
    public var status: String                    // done, rejected, failed
    public var reason: String?
    public var error: String?
    public var stages: [String] = []
    public var strength: Double?, steps: Int?, guidance: Double?, eta: Double?, ensemble: Int?
    public var seed: Int64?
    public var caption: String?
    public var captionTokens: [Int]?
    public var captionScore: Double?
    public var purifiedSHA256: String?
    public var purifiedPNG: [UInt8]?
    public var predLabel: String?
    public var predIndex: Int?
    public var confidence: Double?
    public var topK: String?                     // JSON
    public var consistency: String?
    public var timings: [String: Double] = [:]  // milliseconds per stage

    public init(status: String) { self.status = status }
}

/// One row of the jobs table, as history/show/stats read it.
public struct JobRow: Sendable, FetchableRecord, Codable {
    public var id: String
    public var status: String
    public var reason: String?
    public var error: String?
    public var receivedAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    public var runId: Int64?
    public var finishedRunId: Int64?
    public var attempts: Int
    public var mode: String?
    public var peer: String?
    public var inputSha256: String?
    public var inputFormat: String?
    public var inputSize: Int?
    public var width: Int?
    public var height: Int?
    public var label: String?
    public var meta: String?
    public var requestedParams: String?
    public var strength: Double?
    public var steps: Int?
    public var guidance: Double?
    public var eta: Double?
    public var ensemble: Int?
    public var seed: Int64?
    public var stages: String?
    public var caption: String?
    public var captionTokens: String?
    public var captionScore: Double?
    public var purifiedSha256: String?
    public var predLabel: String?
    public var predIndex: Int?
    public var confidence: Double?
    public var topK: String?
    public var consistency: String?
    public var timings: String?

    static let columns = """
        id, status, reason, error, received_at, started_at, finished_at, run_id, finished_run_id, attempts, mode, peer,
        input_sha256, input_format, input_size, width, height, label, meta, requested_params, strength, steps, guidance,
        eta, ensemble, seed, stages, caption, caption_tokens, caption_score, purified_sha256, pred_label, pred_index,
        confidence, top_k, consistency, timings
        """

    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase

    /// Per-stage milliseconds.
    public var timingsMs: [String: Double] {
        guard let t = timings, let d = try? JSONDecoder().decode([String: Double].self, from: Data(t.utf8)) else { return [:] }
        return d
    }
}

/// A job the daemon must (re)process: its stored input and request.
public struct PendingJob: Sendable, FetchableRecord, Decodable {
    public var id: String
    public var input: Data
    public var inputFormat: String
    public var label: String?
    public var requestedParams: String?
    public var receivedAt: Double
    public var attempts: Int
    public var strength: Double
    public var steps: Int
    public var guidance: Double
    public var eta: Double
    public var ensemble: Int
    public var seed: Int64

    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
}
