// The job model's records as GRDB rows: column names are the properties' in snake_case, dates are
// epoch seconds (REAL), nested values (parameters, top-k, timings, token ids) are JSON text.
import Foundation
import GRDB
import JobModel

/// The column and date conventions every lgap table follows.
public protocol SnakeCaseRecord: FetchableRecord {}

extension SnakeCaseRecord {
    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { .convertFromSnakeCase }
    public static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy { .timeIntervalSince1970 }
}

extension SnakeCaseRecord where Self: EncodableRecord {
    public static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { .convertToSnakeCase }
    public static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { .timeIntervalSince1970 }
}

extension JobRecord: SnakeCaseRecord, PersistableRecord {
    public static let databaseTableName = "jobs"

    /// Every column but the two blobs (input, purified): what list queries read.
    static let listColumns = """
        seq, id, status, reason, error, node, received_at, started_at, finished_at, run_id, finished_run_id, attempts, suspect,
        stage, mode, peer, input_sha256, input_format, input_size, width, height, label, meta, requested_params, params, cost,
        stages_run, caption, caption_tokens, caption_score, purified_sha256, pred_label, pred_index, confidence, top_k,
        consistency, timings
        """
}

extension RefusalRecord: SnakeCaseRecord, PersistableRecord {
    public static let databaseTableName = "refusals"
}

extension NodeRow: SnakeCaseRecord {}
extension StageStat: SnakeCaseRecord {}
extension RunRow: SnakeCaseRecord {}
extension ModelFile: FetchableRecord {}
