// The provenance store behind one protocol: the durable job queue (accept, claim, stage, finish),
// recovery after a crash, fleet leases, and the queries operators run. SQLiteJobStore is the one-node
// default, PostgresJobStore the fleet store; both pass the same contract suite (ProvenanceTests).
//
// Ownership: every job belongs to one node (`node`). Intake assigns the accepting node; a node whose
// heartbeat is older than the lease loses its unfinished jobs to whichever node takes them over
// first (`takeOver`), and every write that finishes or advances a job checks that the writer still
// owns it — so a job is finished, and its result published, exactly once.
import Foundation
import JobModel
import Models

public protocol JobStore: AnyObject, Sendable {
    /// Where the store is, for logs (a path, or a URL without its password).
    var location: String { get }

    // MARK: Runs and nodes

    /// Records a daemon run (its configuration and pack) and returns its id.
    func beginRun(_ run: RunInfo) throws -> Int64
    func endRun(_ id: Int64, reason: String) throws
    /// The model files a run loaded (SHA-256, parameter counts).
    func recordModels(_ models: [ModelFile], run: Int64) throws
    /// Renews `node`'s lease (its heartbeat) and records its counters.
    func heartbeat(_ beat: NodeHeartbeat) throws
    func nodes() throws -> [NodeRow]

    // MARK: Intake

    /// Commits accepted jobs in one transaction (all or none). An id already taken (by any node, or
    /// earlier in the same batch) is a duplicate and changes nothing.
    func insertAccepted(_ jobs: [JobRecord]) throws -> [InsertOutcome]
    /// Records a message refused at the door (its own row, whatever id it claimed).
    func insertRefusal(_ refusal: RefusalRecord) throws

    // MARK: The durable queue

    /// Takes up to `limit` of `node`'s accepted jobs, oldest first, into the decode stage (status
    /// processing), loading their inputs. `isolated`: only suspects (one at a time in practice), each
    /// claim counting an attempt; otherwise only jobs that are not suspects.
    func claim(node: String, limit: Int, isolated: Bool) throws -> [JobRecord]
    /// Records the model stage these jobs (owned by `node`) are inside now (nil: they left it).
    func setStage(_ stage: StageName?, ids: [String], node: String) throws
    /// Writes results; for each, whether this call finished the job (false: it was finished already
    /// or is no longer `node`'s, so its result must not be published).
    func finish(_ results: [JobResult], run: Int64, node: String) throws -> [Bool]
    /// A clean stop: `node`'s unfinished jobs go back to accepted, not suspects.
    @discardableResult func release(node: String) throws -> Int
    /// After a crash of `node`: its unfinished jobs go back to accepted. Those inside `crashedStage`
    /// (the stage the crash journal names) become suspects; with no stage named (kill -9, OOM, power
    /// loss, a crash outside the model stages) every job that was in flight does — too many suspects
    /// cost time, too few would let a poison job crash the daemon forever.
    func recover(node: String, crashedStage: StageName?) throws -> Recovery
    /// Moves the unfinished jobs of nodes whose heartbeat is older than `lease` to `node`, each at
    /// most once; jobs that were inside a model stage become suspects. Returns how many moved.
    func takeOver(node: String, lease: TimeInterval, limit: Int) throws -> Int
    /// Failed jobs back to accepted (attempts and suspicion cleared), by id or all; how many.
    func retry(ids: [String]?, node: String) throws -> Int
    /// `node`'s accepted jobs not yet claimed (suspects counted apart).
    func backlog(node: String) throws -> (normal: Int, suspects: Int)

    // MARK: Queries

    /// The whole record, blobs included.
    func job(_ id: String) throws -> JobRecord?
    func refusals(claimedID: String) throws -> [RefusalRecord]
    /// Newest first; jobs and refusals (refusals count as status rejected).
    func history(_ filter: HistoryFilter) throws -> [HistoryRow]
    /// Jobs per status, plus "refused" for refusals at the door.
    func counts() throws -> [String: Int]
    /// Rejections, failures and refusals by reason.
    func reasonCounts() throws -> [String: Int]
    /// Finished (done) jobs, newest first, without blobs.
    func finishedJobs(limit: Int) throws -> [JobRecord]
    func updateStageStats(run: Int64, stages: [StageStat]) throws
    func stageStats() throws -> [StageStat]
    func runs(limit: Int) throws -> [RunRow]
    func models(run: Int64) throws -> [ModelFile]

    // MARK: Maintenance

    /// Makes the main database file complete (SQLite: WAL checkpoint TRUNCATE) and closes the store.
    func close() throws
    /// Makes the main database file complete without closing (other threads may still write).
    func checkpoint() throws
    /// "ok" when the database is sound.
    func integrityCheck() throws -> String

    // Retention and backup (lgapctl backup/prune, the daemon's [store] retain_* sweep).

    /// Deletes up to `limit` finished jobs (status in the request, finished before its cutoff) — and,
    /// when rejected is among the statuses, refusals received before it — or keeps the rows and drops
    /// their images (the request's action). Unfinished jobs are never touched. Small
    /// batches so a running daemon's commits wait at most one batch; callers loop until 0.
    func prune(_ request: PruneRequest) throws -> Int
    /// A consistent copy of the whole store written to `path` (which must not exist) while lgapd runs.
    func backup(to path: String) throws
    /// Returns the space pruning freed to the file system.
    func vacuum() throws
}

extension JobStore {
    /// Commits one accepted job.
    public func insertAccepted(_ job: JobRecord) throws -> InsertOutcome { try insertAccepted([job])[0] }
}

/// The outcome of committing an accepted job.
public enum InsertOutcome: Sendable, Equatable {
    case inserted(seq: Int64)
    case duplicate
}

/// Why a store call failed: `unavailable` may pass (disk full, database down or locked, connection
/// lost) — the service retries and reports not-ready; `failed` will not (a bug or a bad database).
public enum StoreError: Error, CustomStringConvertible, Sendable {
    case unavailable(String)
    case failed(String)

    public var description: String {
        switch self {
        case .unavailable(let m): return "store unavailable: \(m)"
        case .failed(let m): return "store error: \(m)"
        }
    }

    public var isUnavailable: Bool { if case .unavailable = self { return true } else { return false } }
}

public struct RunInfo: Sendable {
    public var version: String
    public var node: String
    public var host: String
    public var pid: Int32
    public var config: String
    public var pack: String
    public var stages: [StageName]
    public init(version: String, node: String, host: String, pid: Int32, config: String, pack: String, stages: [StageName]) {
        self.version = version; self.node = node; self.host = host; self.pid = pid; self.config = config
        self.pack = pack; self.stages = stages
    }
}

public struct ModelFile: Sendable, Codable, Equatable {
    public var stage: StageName
    public var name: String
    public var path: String
    public var sha256: String
    public var parameters: Int
    public init(stage: StageName, name: String, path: String, sha256: String, parameters: Int) {
        self.stage = stage; self.name = name; self.path = path; self.sha256 = sha256; self.parameters = parameters
    }
}

public struct NodeHeartbeat: Sendable {
    public var node: String
    public var run: Int64
    public var host: String
    public var pid: Int32
    /// ready, draining, not_ready (store or model trouble).
    public var state: String
    /// Jobs inside the pipeline now, and finished by this run.
    public var running: Int
    public var finished: Int
    public init(node: String, run: Int64, host: String, pid: Int32, state: String, running: Int, finished: Int) {
        self.node = node; self.run = run; self.host = host; self.pid = pid; self.state = state
        self.running = running; self.finished = finished
    }
}

public struct NodeRow: Sendable, Codable, Equatable {
    public var name: String
    public var runId: Int64?
    public var host: String?
    public var pid: Int32?
    public var state: String?
    public var startedAt: Date?
    public var heartbeatAt: Date?
    public var running: Int
    public var finished: Int
    /// Jobs this node finished in the last minute (throughput).
    public var finishedLastMinute: Int
    /// Unfinished jobs it owns.
    public var owned: Int
}

public struct Recovery: Sendable, Equatable {
    /// Back to the queue as they were (outside the stage that died).
    public var requeued: Int
    /// Back to the queue as suspects (they run alone next).
    public var suspects: Int
    public init(requeued: Int = 0, suspects: Int = 0) { self.requeued = requeued; self.suspects = suspects }
}

public struct PruneRequest: Sendable, Equatable {
    public enum Action: String, Sendable { case deleteRows, dropImages, dropInputs }
    public var before: Date
    /// Final statuses only (done, rejected, failed); rejected also selects refusals at the door.
    public var statuses: Set<JobStatus>
    /// Delete the rows, or keep them (provenance, hashes, results) and drop the input and purified
    /// images, or the inputs alone.
    public var action: Action
    public var limit: Int
    public init(before: Date, statuses: Set<JobStatus> = [.done, .rejected, .failed], action: Action = .deleteRows, limit: Int = 500) {
        self.before = before
        self.statuses = statuses.filter(\.isFinal)
        self.action = action
        self.limit = limit
    }

    var blobColumns: [String] { action == .dropInputs ? ["input"] : ["input", "purified"] }
    /// SQL: the rows this request still changes, and what it sets.
    var stillHasBlobs: String { action == .deleteRows ? "" : "AND (" + blobColumns.map { "\($0) IS NOT NULL" }.joined(separator: " OR ") + ")" }
    var clearBlobs: String { blobColumns.map { "\($0) = NULL" }.joined(separator: ", ") }
}

public struct HistoryFilter: Sendable {
    public var since: Date?
    public var status: JobStatus?
    public var label: String?
    public var node: String?
    public var limit: Int
    public init(since: Date? = nil, status: JobStatus? = nil, label: String? = nil, node: String? = nil, limit: Int = 50) {
        self.since = since; self.status = status; self.label = label; self.node = node; self.limit = limit
    }
}

/// One line of history: an accepted job, or a message refused at the door.
public enum HistoryRow: Sendable {
    case job(JobRecord)
    case refusal(RefusalRecord)

    public var receivedAt: Date {
        switch self {
        case .job(let j): return j.receivedAt
        case .refusal(let r): return r.receivedAt
        }
    }
}

public struct StageStat: Sendable, Codable, Equatable {
    public var runId: Int64
    public var stage: String
    public var capacity: Int
    public var highWater: Int
    public var processed: Int
    public init(runId: Int64, stage: String, capacity: Int, highWater: Int, processed: Int) {
        self.runId = runId; self.stage = stage; self.capacity = capacity; self.highWater = highWater; self.processed = processed
    }
}

public struct RunRow: Sendable, Codable, Equatable {
    public var id: Int64
    public var version: String
    public var node: String?
    public var startedAt: Date
    public var stoppedAt: Date?
    public var pack: String
    public var stages: String
    public var exitReason: String?
}
