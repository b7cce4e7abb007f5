// Provenance in SQLite through GRDB (WAL): daemon runs, the models each run loaded, and every job
// from arrival to result. A job row is committed before a router-mode ack goes out, so an
// acknowledged job survives kill -9; on start the daemon resumes every accepted-but-unfinished job.
import Digest
import Foundation
import GRDB

public struct StoreError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

public final class JobStore: Sendable {
    public let path: String
    let pool: DatabasePool

    public enum Durability: String, Sendable { case full, normal }

    /// Opens (creating and migrating) the database at `path`.
    public init(path: String, durability: Durability = .full) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty && !FileManager.default.fileExists(atPath: dir) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        var config = Configuration()
        config.busyMode = .timeout(10)
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try Schema.migrator.migrate(pool)
            // DatabasePool sets synchronous=NORMAL on open; FULL must be set afterwards on the writer.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")") }
        } catch {
            throw StoreError(message: "cannot open database \(path): \(error)")
        }
    }

    /// Opens an existing database read-only (lgapctl).
    public init(readingAt path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { throw StoreError(message: "no database at \(path)") }
        var config = Configuration()
        config.readonly = true
        do { pool = try DatabasePool(path: path, configuration: config) } catch {
            throw StoreError(message: "cannot open database \(path): \(error)")
        }
    }

    // MARK: Runs and models

    public func beginRun(version: String, config: String, pack: String, stages: [String]) throws -> Int64 {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO runs (version, started_at, pid, host, config, pack, stages) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           arguments: [version, Date().timeIntervalSince1970, Int(getpid()), ProcessInfo.processInfo.hostName,
                                       config, pack, stages.joined(separator: ",")])
            return db.lastInsertedRowID
        }
    }

    /// Records a clean stop. Jobs this run started and did not finish go back to 'accepted' with that
    /// start not counted: max_attempts counts starts that died with the daemon (a job that may be what
    /// kills it), and a deliberate stop — even with shutdown_timeout_s = 0 — is not one of those.
    public func endRun(_ run: Int64, reason: String) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE jobs SET status = 'accepted', attempts = MAX(attempts - 1, 0)
                WHERE status = 'processing' AND started_at >= (SELECT started_at FROM runs WHERE id = ?)
                """, arguments: [run])
            try db.execute(sql: "UPDATE runs SET stopped_at = ?, exit_reason = ? WHERE id = ?", arguments: [Date().timeIntervalSince1970, reason, run])
        }
    }

    public func recordModel(run: Int64, stage: String, name: String, path: String, sha256: String, parameters: Int) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO models (run_id, stage, name, path, sha256, parameters) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [run, stage, name, path, sha256, parameters])
        }
    }

    // MARK: Jobs

    public enum InsertResult: Sendable, Equatable { case inserted, duplicate }

    /// Stores an accepted job (committed on return). An id already taken by a job that was not
    /// rejected is a duplicate and changes nothing; a rejected id may be submitted again.
    public func insertAccepted(_ job: NewJob, run: Int64) throws -> InsertResult {
        try pool.write { db in
            if let status = try String.fetchOne(db, sql: "SELECT status FROM jobs WHERE id = ?", arguments: [job.id]), status != "rejected" {
                return .duplicate
            }
            try db.execute(sql: """
                INSERT OR REPLACE INTO jobs (id, status, received_at, run_id, attempts, mode, peer, input_sha256, input_format, input_size,
                                             width, height, input, label, meta, requested_params, strength, steps, guidance, eta, ensemble, seed)
                VALUES (?, 'accepted', ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [job.id, job.receivedAt.timeIntervalSince1970, run, job.mode, job.peer, SHA256.hex(job.input),
                                 job.inputFormat, job.input.count, job.width, job.height, Data(job.input), job.label, job.meta,
                                 job.requestedParams, job.strength, job.steps, job.guidance, job.eta, job.ensemble, job.seed])
            return .inserted
        }
    }

    /// Records a message refused at the door (it is never processed).
    public func insertRejected(id: String, run: Int64, mode: String, peer: String?, reason: String, error: String,
                               input: [UInt8]?, header: String?) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO jobs (id, status, reason, error, received_at, finished_at, run_id, finished_run_id, mode, peer,
                                             input_sha256, input_size, meta)
                SELECT ?, 'rejected', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
                WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE id = ? AND status != 'rejected')
                """, arguments: [id, reason, error, Date().timeIntervalSince1970, Date().timeIntervalSince1970, run, run, mode, peer,
                                 input.map { SHA256.hex($0) }, input?.count, header, id])
        }
    }

    public func markStarted(_ id: String, run: Int64) throws { try markStarted([id], run: run) }

    /// Marks a micro-batch started in one transaction (one commit per batch, not per job).
    public func markStarted(_ ids: [String], run: Int64) throws {
        try pool.write { db in
            let now = Date().timeIntervalSince1970
            for id in ids {
                try db.execute(sql: "UPDATE jobs SET status = 'processing', started_at = ?, attempts = attempts + 1 WHERE id = ? AND status IN ('accepted', 'processing')",
                               arguments: [now, id])
            }
        }
    }

    /// Writes a job's result. Returns false when the job was already finished (so its result is not
    /// published twice).
    @discardableResult
    public func finish(_ id: String, run: Int64, outcome o: JobOutcome) throws -> Bool {
        try finish([(id, o)], run: run)[0]
    }

    /// Writes a micro-batch of results in one transaction; for each, whether this call finished it
    /// (false: it was already finished, so its result must not be published again).
    public func finish(_ results: [(id: String, outcome: JobOutcome)], run: Int64) throws -> [Bool] {
        try pool.write { db in
            let now = Date().timeIntervalSince1970
            return try results.map { id, o in
                let timings = String(decoding: (try? JSONSerialization.data(withJSONObject: o.timings, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
                let tokens = o.captionTokens.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }
                try db.execute(sql: """
                    UPDATE jobs SET status = ?, reason = ?, error = ?, finished_at = ?, finished_run_id = ?, stages = ?, strength = ?, steps = ?,
                        guidance = ?, eta = ?, ensemble = ?, seed = ?, caption = ?, caption_tokens = ?, caption_score = ?, purified_sha256 = ?,
                        purified = ?, pred_label = ?, pred_index = ?, confidence = ?, top_k = ?, consistency = ?, timings = ?
                    WHERE id = ? AND status IN ('accepted', 'processing')
                    """, arguments: [o.status, o.reason, o.error, now, run, o.stages.joined(separator: ","), o.strength,
                                     o.steps, o.guidance, o.eta, o.ensemble, o.seed, o.caption, tokens, o.captionScore, o.purifiedSHA256,
                                     o.purifiedPNG.map { Data($0) }, o.predLabel, o.predIndex, o.confidence, o.topK, o.consistency, timings, id])
                return db.changesCount > 0
            }
        }
    }

    /// Accepted jobs not yet finished, oldest first (what a restart resumes).
    public func unfinished(limit: Int = 1_000_000) throws -> [PendingJob] {
        try pool.read { db in
            try PendingJob.fetchAll(db, sql: """
                SELECT id, input, input_format, label, requested_params, received_at, attempts, strength, steps, guidance, eta, ensemble, seed
                FROM jobs
                WHERE status IN ('accepted', 'processing') ORDER BY received_at, rowid LIMIT ?
                """, arguments: [limit])
        }
    }

    public func job(_ id: String) throws -> JobRow? {
        try pool.read { db in try JobRow.fetchOne(db, sql: "SELECT \(JobRow.columns) FROM jobs WHERE id = ?", arguments: [id]) }
    }

    public func input(of id: String) throws -> [UInt8]? {
        try pool.read { db in try Data.fetchOne(db, sql: "SELECT input FROM jobs WHERE id = ?", arguments: [id]).map { [UInt8]($0) } }
    }

    public func purified(of id: String) throws -> [UInt8]? {
        try pool.read { db in try Data.fetchOne(db, sql: "SELECT purified FROM jobs WHERE id = ?", arguments: [id]).map { [UInt8]($0) } }
    }

    public struct HistoryFilter: Sendable {
        public var since: Date?
        public var status: String?
        public var label: String?
        public var limit: Int = 50
        public init(since: Date? = nil, status: String? = nil, label: String? = nil, limit: Int = 50) {
            self.since = since; self.status = status; self.label = label; self.limit = limit
        }
    }

    /// Newest first. `label` matches the predicted label or the ground-truth label.
    public func history(_ f: HistoryFilter) throws -> [JobRow] {
        var clauses: [String] = []
        var args: [any DatabaseValueConvertible] = []
        if let s = f.since { clauses.append("received_at >= ?"); args.append(s.timeIntervalSince1970) }
        if let s = f.status { clauses.append("status = ?"); args.append(s) }
        if let l = f.label { clauses.append("(pred_label = ? OR label = ?)"); args.append(l); args.append(l) }
        let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        args.append(f.limit)
        return try pool.read { db in
            try JobRow.fetchAll(db, sql: "SELECT \(JobRow.columns) FROM jobs \(whereSQL) ORDER BY received_at DESC, rowid DESC LIMIT ?",
                                arguments: StatementArguments(args))
        }
    }

    public func counts() throws -> [String: Int] {
        try pool.read { db in
            var out: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status") { out[row["status"]] = row["n"] }
            return out
        }
    }

    public func rejectReasons() throws -> [String: Int] {
        try pool.read { db in
            var out: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT COALESCE(reason, 'unknown') AS r, COUNT(*) AS n FROM jobs WHERE status IN ('rejected', 'failed') GROUP BY r") {
                out[row["r"]] = row["n"]
            }
            return out
        }
    }

    /// Finished jobs (done) with their timings, newest first.
    public func finishedJobs(limit: Int) throws -> [JobRow] {
        try pool.read { db in
            try JobRow.fetchAll(db, sql: "SELECT \(JobRow.columns) FROM jobs WHERE status = 'done' ORDER BY finished_at DESC LIMIT ?", arguments: [limit])
        }
    }

    public func updateStageStats(run: Int64, stage: String, capacity: Int, highWater: Int, processed: Int) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO stage_stats (run_id, stage, capacity, high_water, processed, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(run_id, stage) DO UPDATE SET capacity = excluded.capacity, high_water = MAX(high_water, excluded.high_water),
                    processed = excluded.processed, updated_at = excluded.updated_at
                """, arguments: [run, stage, capacity, highWater, processed, Date().timeIntervalSince1970])
        }
    }

    public struct StageStat: Sendable, FetchableRecord, Decodable {
        public var runId: Int64
        public var stage: String
        public var capacity: Int
        public var highWater: Int
        public var processed: Int
        public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    }

    public func stageStats() throws -> [StageStat] {
        try pool.read { db in
            try StageStat.fetchAll(db, sql: "SELECT run_id, stage, capacity, high_water, processed FROM stage_stats ORDER BY run_id DESC, stage")
        }
    }

    public struct RunRow: Sendable, FetchableRecord, Decodable {
        public var id: Int64
        public var version: String
        public var startedAt: Double
        public var stoppedAt: Double?
        public var pack: String
        public var stages: String
        public var exitReason: String?
        public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    }

    public func runs(limit: Int = 10) throws -> [RunRow] {
        try pool.read { db in
            try RunRow.fetchAll(db, sql: "SELECT id, version, started_at, stopped_at, pack, stages, exit_reason FROM runs ORDER BY id DESC LIMIT ?", arguments: [limit])
        }
    }

    public struct ModelRow: Sendable, FetchableRecord, Decodable {
        public var stage: String
        public var name: String
        public var path: String
        public var sha256: String
        public var parameters: Int
    }

    public func models(run: Int64) throws -> [ModelRow] {
        try pool.read { db in
            try ModelRow.fetchAll(db, sql: "SELECT stage, name, path, sha256, parameters FROM models WHERE run_id = ? ORDER BY id", arguments: [run])
        }
    }

    /// PRAGMA integrity_check's answer ("ok" when the database is sound).
    public func integrityCheck() throws -> String {
        try pool.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }
}
