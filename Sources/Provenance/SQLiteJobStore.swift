// The one-node store: SQLite through GRDB, in WAL mode. A job row is committed before a router-mode
// ack goes out, so an acknowledged job survives kill -9; durability "full" fsyncs every commit
// (power loss), "normal" survives process crashes. One daemon per database file (InstanceLock).
import Foundation
import GRDB
import JobModel
import Models

public final class SQLiteJobStore: JobStore, @unchecked Sendable {
    public enum Durability: String, Sendable { case full, normal }

    public let path: String
    public var location: String { path }
    let pool: DatabasePool
    let readOnly: Bool

    /// Opens (creating and migrating) the database at `path`.
    public init(path: String, durability: Durability = .full) throws {
        self.path = path
        readOnly = false
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty && !FileManager.default.fileExists(atPath: dir) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        var config = Configuration()
        config.busyMode = .timeout(10)
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try SQLiteSchema.migrator.migrate(pool)
            // DatabasePool sets synchronous=NORMAL on open; FULL must be set afterwards on the writer.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")") }
        } catch {
            throw Self.classify(error, "cannot open database \(path)")
        }
    }

    /// Opens an existing database read-only (lgapctl's queries).
    public init(readingAt path: String) throws {
        self.path = path
        readOnly = true
        guard FileManager.default.fileExists(atPath: path) else { throw StoreError.failed("no database at \(path)") }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(10)
        do {
            pool = try DatabasePool(path: path, configuration: config)
            let applied = try pool.read { db in try SQLiteSchema.migrator.appliedIdentifiers(db) }
            guard applied.contains("v2") else {
                throw StoreError.failed("\(path) has an older schema (\(applied.sorted().joined(separator: ", "))); start lgapd once to migrate it")
            }
        } catch let e as StoreError {
            throw e
        } catch {
            throw Self.classify(error, "cannot open database \(path)")
        }
    }

    /// Disk full, I/O errors, a locked or unopenable file: may pass (`unavailable`); others do not.
    static func classify(_ error: Error, _ context: String) -> StoreError {
        if let e = error as? StoreError { return e }
        if let e = error as? DatabaseError {
            switch e.resultCode {
            case .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_PROTOCOL:
                return .unavailable("\(context): \(e.message ?? "\(e.resultCode)") (\(e.resultCode))")
            default:
                return .failed("\(context): \(e)")
            }
        }
        return .failed("\(context): \(error)")
    }

    private func write<T>(_ what: String, _ body: (Database) throws -> T) throws -> T {
        do { return try pool.write(body) } catch { throw Self.classify(error, what) }
    }

    private func read<T>(_ what: String, _ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch { throw Self.classify(error, what) }
    }

    static var now: Double { Date().timeIntervalSince1970 }

    static func placeholders(_ n: Int) -> String { Array(repeating: "?", count: n).joined(separator: ", ") }

    // MARK: Runs and nodes

    public func beginRun(_ r: RunInfo) throws -> Int64 {
        try write("record the run") { db in
            try db.execute(
                sql: "INSERT INTO runs (version, node, started_at, pid, host, config, pack, stages) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    r.version, r.node, Self.now, Int(r.pid), r.host, r.config, r.pack,
                    r.stages.map(\.rawValue).joined(separator: ",")
                ])
            let id = db.lastInsertedRowID
            try db.execute(
                sql: """
                    INSERT INTO nodes (name, run_id, host, pid, state, started_at, heartbeat_at, running, finished)
                    VALUES (?, ?, ?, ?, 'starting', ?, ?, 0, 0)
                    ON CONFLICT(name) DO UPDATE SET run_id = excluded.run_id, host = excluded.host, pid = excluded.pid,
                        state = excluded.state, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, running = 0, finished = 0
                    """, arguments: [r.node, id, r.host, Int(r.pid), Self.now, Self.now])
            return id
        }
    }

    public func endRun(_ id: Int64, reason: String) throws {
        try write("record the end of the run") { db in
            try db.execute(sql: "UPDATE runs SET stopped_at = ?, exit_reason = ? WHERE id = ?", arguments: [Self.now, reason, id])
            try db.execute(sql: "UPDATE nodes SET state = 'stopped', running = 0 WHERE run_id = ?", arguments: [id])
        }
    }

    public func recordModels(_ models: [ModelFile], run: Int64) throws {
        try write("record the models") { db in
            for m in models {
                try db.execute(
                    sql: "INSERT INTO models (run_id, stage, name, path, sha256, parameters) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [run, m.stage.rawValue, m.name, m.path, m.sha256, m.parameters])
            }
        }
    }

    public func heartbeat(_ b: NodeHeartbeat) throws {
        try write("heartbeat") { db in
            try db.execute(
                sql: """
                    INSERT INTO nodes (name, run_id, host, pid, state, started_at, heartbeat_at, running, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(name) DO UPDATE SET run_id = excluded.run_id, host = excluded.host, pid = excluded.pid, state = excluded.state,
                        heartbeat_at = excluded.heartbeat_at, running = excluded.running, finished = excluded.finished
                    """, arguments: [b.node, b.run, b.host, Int(b.pid), b.state, Self.now, Self.now, b.running, b.finished])
        }
    }

    public func nodes() throws -> [NodeRow] {
        try read("list nodes") { db in
            try NodeRow.fetchAll(
                db,
                sql: """
                    SELECT n.name, n.run_id, n.host, n.pid, n.state, n.started_at, n.heartbeat_at, n.running, n.finished,
                        (SELECT COUNT(*) FROM jobs j WHERE j.node = n.name AND j.status IN ('done', 'rejected', 'failed') AND j.finished_at >= ?)
                            AS finished_last_minute,
                        (SELECT COUNT(*) FROM jobs j WHERE j.node = n.name AND j.status IN ('accepted', 'processing')) AS owned
                    FROM nodes n ORDER BY n.name
                    """, arguments: [Self.now - 60])
        }
    }

    // MARK: Intake

    public func insertAccepted(_ jobs: [JobRecord]) throws -> [InsertOutcome] {
        try write("commit \(jobs.count) job(s)") { db in
            try jobs.map { job in
                if try Bool.fetchOne(db, sql: "SELECT 1 FROM jobs WHERE id = ?", arguments: [job.id]) == true { return .duplicate }
                var j = job
                j.seq = nil
                try j.insert(db)
                return .inserted(seq: db.lastInsertedRowID)
            }
        }
    }

    public func insertRefusal(_ refusal: RefusalRecord) throws {
        try write("record a refusal") { db in
            var r = refusal
            r.seq = nil
            try r.insert(db)
        }
    }

    // MARK: The durable queue

    public func claim(node: String, limit: Int, isolated: Bool) throws -> [JobRecord] {
        try write("claim jobs") { db in
            try JobRecord.fetchAll(
                db,
                sql: """
                    UPDATE jobs SET status = 'processing', stage = NULL, started_at = COALESCE(started_at, ?), attempts = attempts + ?
                    WHERE seq IN (SELECT seq FROM jobs WHERE node = ? AND status = 'accepted' AND suspect = ? ORDER BY seq LIMIT ?)
                    RETURNING *
                    """, arguments: [Self.now, isolated ? 1 : 0, node, isolated ? 1 : 0, limit]
            ).sorted { ($0.seq ?? 0) < ($1.seq ?? 0) }
        }
    }

    public func setStage(_ stage: StageName?, ids: [String], node: String) throws {
        guard !ids.isEmpty else { return }
        try write("record the stage") { db in
            try db.execute(
                sql: "UPDATE jobs SET stage = ? WHERE node = ? AND status = 'processing' AND id IN (\(Self.placeholders(ids.count)))",
                arguments: StatementArguments([stage?.rawValue, node] + ids))
        }
    }

    public func finish(_ results: [JobResult], run: Int64, node: String) throws -> [Bool] {
        let encoder = JSONEncoder()
        func json<T: Encodable>(_ v: T?) -> String? {
            v.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) }
        }
        return try write("record results") { db in
            let now = Self.now
            return try results.map { r in
                try db.execute(
                    sql: """
                        UPDATE jobs SET status = ?, reason = ?, error = ?, finished_at = ?, finished_run_id = ?, stage = NULL, suspect = 0,
                            stages_run = ?, params = ?, caption = ?, caption_tokens = ?, caption_score = ?, purified_sha256 = ?, purified = ?,
                            pred_label = ?, pred_index = ?, confidence = ?, top_k = ?, consistency = ?, timings = ?
                        WHERE id = ? AND node = ? AND status IN ('accepted', 'processing')
                        """,
                    arguments: [
                        r.status.rawValue, r.reason?.rawValue, r.error, now, run, json(r.stagesRun), json(r.params), r.caption,
                        json(r.captionTokens), r.captionScore, r.purifiedSha256, r.purifiedPNG.map { Data($0) }, r.label,
                        r.labelIndex, r.confidence, json(r.topK), r.consistency?.rawValue, json(r.timingsMs), r.id, node
                    ])
                return db.changesCount > 0
            }
        }
    }

    public func release(node: String) throws -> Int {
        try write("release unfinished jobs") { db in
            try db.execute(sql: "UPDATE jobs SET status = 'accepted', stage = NULL WHERE node = ? AND status = 'processing'", arguments: [node])
            return db.changesCount
        }
    }

    public func recover(node: String, crashedStage: StageName?) throws -> Recovery {
        try write("recover after a crash") { db in
            var r = Recovery()
            try db.execute(
                sql: """
                    UPDATE jobs SET status = 'accepted', stage = NULL, suspect = 1
                    WHERE node = ? AND status = 'processing' AND (? IS NULL OR stage = ?)
                    """, arguments: [node, crashedStage?.rawValue, crashedStage?.rawValue])
            r.suspects = db.changesCount
            try db.execute(sql: "UPDATE jobs SET status = 'accepted', stage = NULL WHERE node = ? AND status = 'processing'", arguments: [node])
            r.requeued = db.changesCount
            return r
        }
    }

    public func takeOver(node: String, lease: TimeInterval, limit: Int) throws -> Int {
        try write("take over jobs of dead nodes") { db in
            try db.execute(
                sql: """
                    UPDATE jobs SET node = ?, status = 'accepted', stage = NULL,
                        suspect = CASE WHEN status = 'processing' AND stage IS NOT NULL THEN 1 ELSE suspect END
                    WHERE seq IN (
                        SELECT j.seq FROM jobs j LEFT JOIN nodes n ON n.name = j.node
                        WHERE j.status IN ('accepted', 'processing') AND j.node != ? AND (n.heartbeat_at IS NULL OR n.heartbeat_at < ?)
                        ORDER BY j.seq LIMIT ?)
                    """, arguments: [node, node, Self.now - lease, limit])
            return db.changesCount
        }
    }

    public func retry(ids: [String]?, node: String) throws -> Int {
        try write("re-queue failed jobs") { db in
            let filter = ids.map { "AND id IN (\(Self.placeholders($0.count)))" } ?? ""
            try db.execute(
                sql: """
                    UPDATE jobs SET status = 'accepted', reason = NULL, error = NULL, finished_at = NULL, finished_run_id = NULL,
                        attempts = 0, suspect = 0, stage = NULL, node = CASE WHEN ? = '' THEN node ELSE ? END
                    WHERE status = 'failed' AND input IS NOT NULL \(filter)
                    """, arguments: StatementArguments([node, node] + (ids ?? [])))
            return db.changesCount
        }
    }

    public func backlog(node: String) throws -> (normal: Int, suspects: Int) {
        try read("count the backlog") { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT suspect, COUNT(*) AS n FROM jobs WHERE node = ? AND status = 'accepted' GROUP BY suspect",
                arguments: [node])
            var out = (normal: 0, suspects: 0)
            for row in rows { if (row["suspect"] as Int) != 0 { out.suspects = row["n"] } else { out.normal = row["n"] } }
            return out
        }
    }

    // MARK: Queries

    public func job(_ id: String) throws -> JobRecord? {
        try read("read job") { db in try JobRecord.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [id]) }
    }

    public func refusals(claimedID: String) throws -> [RefusalRecord] {
        try read("read refusals") { db in
            try RefusalRecord.fetchAll(db, sql: "SELECT * FROM refusals WHERE claimed_id = ? ORDER BY seq DESC", arguments: [claimedID])
        }
    }

    public func history(_ f: HistoryFilter) throws -> [HistoryRow] {
        try read("read history") { db in
            var clauses: [String] = [], args: [any DatabaseValueConvertible] = []
            if let s = f.since { clauses.append("received_at >= ?"); args.append(s.timeIntervalSince1970) }
            if let s = f.status { clauses.append("status = ?"); args.append(s.rawValue) }
            if let l = f.label { clauses.append("(pred_label = ? OR label = ?)"); args += [l, l] }
            if let n = f.node { clauses.append("node = ?"); args.append(n) }
            let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            var rows = try JobRecord.fetchAll(
                db, sql: "SELECT \(JobRecord.listColumns) FROM jobs \(whereSQL) ORDER BY received_at DESC, seq DESC LIMIT ?",
                arguments: StatementArguments(args + [f.limit])
            ).map(HistoryRow.job)
            if (f.status == nil || f.status == .rejected) && f.label == nil {
                var rc: [String] = [], ra: [any DatabaseValueConvertible] = []
                if let s = f.since { rc.append("received_at >= ?"); ra.append(s.timeIntervalSince1970) }
                if let n = f.node { rc.append("node = ?"); ra.append(n) }
                let rw = rc.isEmpty ? "" : "WHERE " + rc.joined(separator: " AND ")
                rows += try RefusalRecord.fetchAll(
                    db, sql: "SELECT * FROM refusals \(rw) ORDER BY received_at DESC, seq DESC LIMIT ?",
                    arguments: StatementArguments(ra + [f.limit])
                ).map(HistoryRow.refusal)
                rows.sort { $0.receivedAt > $1.receivedAt }
            }
            return Array(rows.prefix(f.limit))
        }
    }

    public func counts() throws -> [String: Int] {
        try read("count jobs") { db in
            var out: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status") { out[row["status"]] = row["n"] }
            let refused = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM refusals") ?? 0
            if refused > 0 { out["refused"] = refused }
            return out
        }
    }

    public func reasonCounts() throws -> [String: Int] {
        try read("count reasons") { db in
            var out: [String: Int] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT reason, COUNT(*) AS n FROM jobs WHERE reason IS NOT NULL GROUP BY reason
                    UNION ALL SELECT reason, COUNT(*) AS n FROM refusals GROUP BY reason
                    """)
            {
                out[row["reason"], default: 0] += row["n"] as Int
            }
            return out
        }
    }

    public func finishedJobs(limit: Int) throws -> [JobRecord] {
        try read("read finished jobs") { db in
            try JobRecord.fetchAll(
                db, sql: "SELECT \(JobRecord.listColumns) FROM jobs WHERE status = 'done' ORDER BY finished_at DESC LIMIT ?",
                arguments: [limit])
        }
    }

    public func updateStageStats(run: Int64, stages: [StageStat]) throws {
        try write("record stage statistics") { db in
            for s in stages {
                try db.execute(
                    sql: """
                        INSERT INTO stage_stats (run_id, stage, capacity, high_water, processed, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT(run_id, stage) DO UPDATE SET capacity = excluded.capacity, high_water = MAX(high_water, excluded.high_water),
                            processed = excluded.processed, updated_at = excluded.updated_at
                        """, arguments: [run, s.stage, s.capacity, s.highWater, s.processed, Self.now])
            }
        }
    }

    public func stageStats() throws -> [StageStat] {
        try read("read stage statistics") { db in
            try StageStat.fetchAll(db, sql: "SELECT run_id, stage, capacity, high_water, processed FROM stage_stats ORDER BY run_id DESC, stage")
        }
    }

    public func runs(limit: Int) throws -> [RunRow] {
        try read("read runs") { db in
            try RunRow.fetchAll(
                db, sql: "SELECT id, version, node, started_at, stopped_at, pack, stages, exit_reason FROM runs ORDER BY id DESC LIMIT ?",
                arguments: [limit])
        }
    }

    public func models(run: Int64) throws -> [ModelFile] {
        try read("read models") { db in
            try ModelFile.fetchAll(db, sql: "SELECT stage, name, path, sha256, parameters FROM models WHERE run_id = ? ORDER BY id", arguments: [run])
        }
    }

    // MARK: Maintenance

    public func checkpoint() throws {
        guard !readOnly else { return }
        // Move every committed page into the main file and empty the WAL, so a copy of the .sqlite file
        // alone (backups, `scp`) holds the whole database.
        do { try pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) } } catch {
            throw Self.classify(error, "checkpoint")
        }
    }

    public func close() throws {
        try checkpoint()
        do { try pool.close() } catch { throw Self.classify(error, "close") }
    }

    public func integrityCheck() throws -> String {
        try read("integrity check") { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }

    // MARK: Retention and backup

    public func prune(_ r: PruneRequest) throws -> Int {
        let statuses = r.statuses.map(\.rawValue).sorted()
        guard !statuses.isEmpty else { return 0 }
        let cutoff = r.before.timeIntervalSince1970
        return try write("prune") { db in
            let chosen = """
                SELECT seq FROM jobs WHERE status IN (\(Self.placeholders(statuses.count))) AND finished_at < ?
                \(r.stillHasBlobs) ORDER BY finished_at LIMIT ?
                """
            let args = StatementArguments(statuses) + [cutoff, r.limit]
            if r.action != .deleteRows {
                try db.execute(sql: "UPDATE jobs SET \(r.clearBlobs) WHERE seq IN (\(chosen))", arguments: args)
            } else {
                try db.execute(sql: "DELETE FROM jobs WHERE seq IN (\(chosen))", arguments: args)
            }
            var changed = db.changesCount
            if r.action == .deleteRows && r.statuses.contains(.rejected) && changed < r.limit {
                try db.execute(
                    sql: "DELETE FROM refusals WHERE seq IN (SELECT seq FROM refusals WHERE received_at < ? ORDER BY seq LIMIT ?)",
                    arguments: [cutoff, r.limit - changed])
                changed += db.changesCount
            }
            return changed
        }
    }

    public func backup(to path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else { throw StoreError.failed("\(path) exists: backups never overwrite") }
        // VACUUM INTO writes a consistent snapshot (one read transaction) into a new, compact file,
        // complete without a WAL; the daemon keeps committing meanwhile.
        do { try pool.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) } } catch {
            throw Self.classify(error, "backup to \(path)")
        }
    }

    public func vacuum() throws {
        do { try pool.writeWithoutTransaction { db in try db.execute(sql: "VACUUM") } } catch { throw Self.classify(error, "vacuum") }
    }
}
