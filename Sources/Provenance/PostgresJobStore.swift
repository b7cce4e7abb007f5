// The fleet store: PostgreSQL through libpq. Every node of a fleet writes its jobs here; job ids are
// unique fleet-wide (the primary key), nodes heartbeat into `nodes`, and a node whose heartbeat is
// older than the lease loses its unfinished jobs to the first survivor that takes them
// (`FOR UPDATE SKIP LOCKED`: each job moves once). Same semantics as SQLiteJobStore, same contract
// tests. Timestamps are epoch seconds (double precision), JSON values text, as in SQLite.
//
// Why libpq and not PostgresNIO: lgapd's store calls are synchronous on dedicated threads (ingest,
// stage workers, recorder), which is libpq's model; PostgresNIO is async-only and would need an event
// loop and a bridge per call on a 2-core machine, and a build several minutes longer.
import Foundation
import JobModel
import Models

public final class PostgresJobStore: JobStore, @unchecked Sendable {
    public let url: PostgresURL
    public var location: String { url.redacted }
    let pool: PostgresPool
    /// Holds the node-name lock (a session advisory lock) for the daemon's life.
    private var lockConnection: PostgresConnection?
    private let password: String?

    /// Connects; with `migrate`, creates or upgrades the schema (the daemon does, lgapctl does not).
    /// The password: the URL's, else the first line of `passwordFile`, else $PGPASSWORD (libpq reads
    /// ~/.pgpass itself).
    public init(url: PostgresURL, passwordFile: String?, migrate: Bool, poolSize: Int = 6) throws {
        self.url = url
        var password = url.password
        if password == nil, let passwordFile {
            guard let text = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
                throw StoreError.failed("cannot read password_file \(passwordFile)")
            }
            password = text.split(separator: "\n").first.map { String($0).trimmingCharacters(in: .whitespaces) }
        }
        self.password = password
        pool = try PostgresPool(url: url, password: password, maxConnections: poolSize)
        if migrate {
            try PostgresSchema.migrate(pool)
        } else {
            let ok = try pool.with { c in try c.execute("SELECT to_regclass('public.jobs') IS NOT NULL AS ok").rows.first?.first }
            guard ok == .text("t") else { throw StoreError.failed("\(url.redacted) has no lgap schema; start lgapd on it once") }
        }
    }

    /// Takes the fleet-wide lock on a node name (two daemons must not run as one node), or throws
    /// InstanceLock.Held naming the pid the other recorded.
    public func lockNode(_ node: String) throws {
        let c = try PostgresConnection(url: url, password: password)
        let got = try c.execute("SELECT pg_try_advisory_lock(hashtext('lgapd-node:' || $1))", [.text(node)]).rows.first?.first
        guard got == .text("t") else {
            let pid = try? pool.with { c in try c.execute("SELECT pid FROM nodes WHERE name = $1", [.text(node)]).rows.first?.first }
            var n: Int32? = nil
            if case .text(let s)? = pid { n = Int32(s) }
            throw InstanceLock.Held(path: "node '\(node)' in \(url.redacted)", pid: n)
        }
        lockConnection = c
    }

    static var now: Double { Date().timeIntervalSince1970 }
    /// The server's clock, for heartbeats and lease expiry: nodes' clocks may disagree, the server's is
    /// the one every node compares against.
    static let serverNow = "extract(epoch from clock_timestamp())::double precision"

    private func rows<T: Decodable>(_ type: T.Type, _ r: PGResult) throws -> [T] {
        try r.rows.map { try PGRowDecoder.decode(type, columns: r.columns, types: r.types, values: $0) }
    }

    // MARK: Runs and nodes

    public func beginRun(_ r: RunInfo) throws -> Int64 {
        try pool.transaction { c in
            let res = try c.execute(
                """
                INSERT INTO runs (version, node, started_at, pid, host, config, pack, stages) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
                """,
                [
                    .text(r.version), .text(r.node), PGValue(Self.now), PGValue(Int(r.pid)), .text(r.host), .text(r.config), .text(r.pack),
                    .text(r.stages.map(\.rawValue).joined(separator: ","))
                ])
            guard case .text(let s)? = res.rows.first?.first, let id = Int64(s) else { throw StoreError.failed("INSERT INTO runs returned no id") }
            try c.execute(
                """
                INSERT INTO nodes (name, run_id, host, pid, state, started_at, heartbeat_at, running, finished)
                VALUES ($1, $2, $3, $4, 'starting', \(Self.serverNow), \(Self.serverNow), 0, 0)
                ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id, host = excluded.host, pid = excluded.pid, state = excluded.state,
                    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, running = 0, finished = 0
                """, [.text(r.node), PGValue(id), .text(r.host), PGValue(Int(r.pid))])
            return id
        }
    }

    public func endRun(_ id: Int64, reason: String) throws {
        try pool.transaction { c in
            try c.execute("UPDATE runs SET stopped_at = $1, exit_reason = $2 WHERE id = $3", [PGValue(Self.now), .text(reason), PGValue(id)])
            try c.execute("UPDATE nodes SET state = 'stopped', running = 0 WHERE run_id = $1", [PGValue(id)])
        }
    }

    public func recordModels(_ models: [ModelFile], run: Int64) throws {
        try pool.transaction { c in
            for m in models {
                try c.execute(
                    "INSERT INTO models (run_id, stage, name, path, sha256, parameters) VALUES ($1, $2, $3, $4, $5, $6)",
                    [PGValue(run), .text(m.stage.rawValue), .text(m.name), .text(m.path), .text(m.sha256), PGValue(m.parameters)])
            }
        }
    }

    public func heartbeat(_ b: NodeHeartbeat) throws {
        try pool.with { c in
            try c.execute(
                """
                INSERT INTO nodes (name, run_id, host, pid, state, started_at, heartbeat_at, running, finished)
                    VALUES ($1, $2, $3, $4, $5, \(Self.serverNow), \(Self.serverNow), $6, $7)
                ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id, host = excluded.host, pid = excluded.pid, state = excluded.state,
                    heartbeat_at = excluded.heartbeat_at, running = excluded.running, finished = excluded.finished
                """,
                [.text(b.node), PGValue(b.run), .text(b.host), PGValue(Int(b.pid)), .text(b.state), PGValue(b.running), PGValue(b.finished)])
        }
    }

    public func nodes() throws -> [NodeRow] {
        try pool.with { c in
            try rows(
                NodeRow.self,
                c.execute(
                    """
                    SELECT n.name, n.run_id, n.host, n.pid, n.state, n.started_at, n.heartbeat_at, n.running, n.finished,
                        (SELECT COUNT(*) FROM jobs j WHERE j.node = n.name AND j.status IN ('done', 'rejected', 'failed') AND j.finished_at >= $1)
                            AS finished_last_minute,
                        (SELECT COUNT(*) FROM jobs j WHERE j.node = n.name AND j.status IN ('accepted', 'processing')) AS owned
                    FROM nodes n ORDER BY n.name
                    """, [PGValue(Self.now - 60)]))
        }
    }

    // MARK: Intake

    public func insertAccepted(_ jobs: [JobRecord]) throws -> [InsertOutcome] {
        let rows = try jobs.map { try PGRowEncoder.values($0, skipping: ["seq"]) }
        return try pool.transaction { c in
            try rows.map { values in
                let res = try c.execute(
                    """
                    INSERT INTO jobs (\(values.map(\.column).joined(separator: ", "))) VALUES (\(Self.placeholders(values.count)))
                    ON CONFLICT (id) DO NOTHING RETURNING seq
                    """, values.map(\.value))
                guard case .text(let s)? = res.rows.first?.first, let seq = Int64(s) else { return .duplicate }
                return .inserted(seq: seq)
            }
        }
    }

    public func insertRefusal(_ refusal: RefusalRecord) throws {
        let values = try PGRowEncoder.values(refusal, skipping: ["seq"])
        try pool.with { c in
            try c.execute(
                "INSERT INTO refusals (\(values.map(\.column).joined(separator: ", "))) VALUES (\(Self.placeholders(values.count)))",
                values.map(\.value))
        }
    }

    static func placeholders(_ n: Int, from start: Int = 1) -> String { (start..<(start + n)).map { "$\($0)" }.joined(separator: ", ") }

    // MARK: The durable queue

    public func claim(node: String, limit: Int, isolated: Bool) throws -> [JobRecord] {
        try pool.with { c in
            try rows(
                JobRecord.self,
                c.execute(
                    """
                    UPDATE jobs SET status = 'processing', stage = NULL, started_at = COALESCE(started_at, $1), attempts = attempts + $2
                    WHERE seq IN (SELECT seq FROM jobs WHERE node = $3 AND status = 'accepted' AND suspect = $4 ORDER BY seq LIMIT $5
                                  FOR UPDATE SKIP LOCKED)
                    RETURNING *
                    """, [PGValue(Self.now), PGValue(isolated ? 1 : 0), .text(node), PGValue(isolated), PGValue(limit)]))
        }.sorted { ($0.seq ?? 0) < ($1.seq ?? 0) }
    }

    public func setStage(_ stage: StageName?, ids: [String], node: String) throws {
        guard !ids.isEmpty else { return }
        try pool.with { c in
            try c.execute(
                "UPDATE jobs SET stage = $1 WHERE node = $2 AND status = 'processing' AND id = ANY($3::text[])",
                [PGValue(stage?.rawValue), .text(node), .text(Self.textArray(ids))])
        }
    }

    /// A text[] literal: {"a","b"} (ids are [A-Za-z0-9._:-], but quote anyway).
    static func textArray(_ items: [String]) -> String {
        "{"
            + items.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
            .joined(separator: ",") + "}"
    }

    public func finish(_ results: [JobResult], run: Int64, node: String) throws -> [Bool] {
        let encoder = JSONEncoder()
        func json<T: Encodable>(_ v: T?) -> PGValue {
            PGValue(v.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) })
        }
        return try pool.transaction { c in
            try results.map { r in
                try c.execute(
                    """
                    UPDATE jobs SET status = $1, reason = $2, error = $3, finished_at = $4, finished_run_id = $5, stage = NULL, suspect = false,
                        stages_run = $6, params = $7, caption = $8, caption_tokens = $9, caption_score = $10, purified_sha256 = $11,
                        purified = $12, pred_label = $13, pred_index = $14, confidence = $15, top_k = $16, consistency = $17, timings = $18
                    WHERE id = $19 AND node = $20 AND status IN ('accepted', 'processing')
                    """,
                    [
                        .text(r.status.rawValue), PGValue(r.reason?.rawValue), PGValue(r.error), PGValue(Self.now), PGValue(run),
                        json(r.stagesRun), json(r.params), PGValue(r.caption), json(r.captionTokens), PGValue(r.captionScore),
                        PGValue(r.purifiedSha256), PGValue(r.purifiedPNG.map { Data($0) }), PGValue(r.label), PGValue(r.labelIndex),
                        PGValue(r.confidence), json(r.topK), PGValue(r.consistency?.rawValue), json(r.timingsMs), .text(r.id),
                        .text(node)
                    ]
                ).affected > 0
            }
        }
    }

    public func release(node: String) throws -> Int {
        try pool.with { c in
            try c.execute("UPDATE jobs SET status = 'accepted', stage = NULL WHERE node = $1 AND status = 'processing'", [.text(node)]).affected
        }
    }

    public func recover(node: String, crashedStage: StageName?) throws -> Recovery {
        try pool.transaction { c in
            var r = Recovery()
            r.suspects = try c.execute(
                """
                UPDATE jobs SET status = 'accepted', stage = NULL, suspect = true
                WHERE node = $1 AND status = 'processing' AND ($2::text IS NULL OR stage = $2::text)
                """, [.text(node), PGValue(crashedStage?.rawValue)]
            ).affected
            r.requeued = try c.execute(
                "UPDATE jobs SET status = 'accepted', stage = NULL WHERE node = $1 AND status = 'processing'",
                [.text(node)]
            ).affected
            return r
        }
    }

    public func takeOver(node: String, lease: TimeInterval, limit: Int) throws -> Int {
        try pool.with { c in
            try c.execute(
                """
                UPDATE jobs SET node = $1, status = 'accepted', stage = NULL,
                    suspect = CASE WHEN status = 'processing' AND stage IS NOT NULL THEN true ELSE suspect END
                WHERE seq IN (
                    SELECT j.seq FROM jobs j LEFT JOIN nodes n ON n.name = j.node
                    WHERE j.status IN ('accepted', 'processing') AND j.node <> $1
                        AND (n.heartbeat_at IS NULL OR n.heartbeat_at < \(Self.serverNow) - $2)
                    ORDER BY j.seq LIMIT $3 FOR UPDATE OF j SKIP LOCKED)
                """, [.text(node), PGValue(lease), PGValue(limit)]
            ).affected
        }
    }

    public func retry(ids: [String]?, node: String) throws -> Int {
        try pool.with { c in
            let filter = ids == nil ? "" : "AND id = ANY($2::text[])"
            var params: [PGValue] = [.text(node)]
            if let ids { params.append(.text(Self.textArray(ids))) }
            return try c.execute(
                """
                UPDATE jobs SET status = 'accepted', reason = NULL, error = NULL, finished_at = NULL, finished_run_id = NULL,
                    attempts = 0, suspect = false, stage = NULL, node = CASE WHEN $1 = '' THEN node ELSE $1 END
                WHERE status = 'failed' AND input IS NOT NULL \(filter)
                """, params
            ).affected
        }
    }

    public func backlog(node: String) throws -> (normal: Int, suspects: Int) {
        try pool.with { c in
            let r = try c.execute("SELECT suspect, COUNT(*) FROM jobs WHERE node = $1 AND status = 'accepted' GROUP BY suspect", [.text(node)])
            var out = (normal: 0, suspects: 0)
            for row in r.rows {
                guard case .text(let s) = row[0], case .text(let n) = row[1], let count = Int(n) else { continue }
                if s == "t" { out.suspects = count } else { out.normal = count }
            }
            return out
        }
    }

    // MARK: Queries

    public func job(_ id: String) throws -> JobRecord? {
        try pool.with { c in try rows(JobRecord.self, c.execute("SELECT * FROM jobs WHERE id = $1", [.text(id)])).first }
    }

    public func refusals(claimedID: String) throws -> [RefusalRecord] {
        try pool.with { c in
            try rows(RefusalRecord.self, c.execute("SELECT * FROM refusals WHERE claimed_id = $1 ORDER BY seq DESC", [.text(claimedID)]))
        }
    }

    public func history(_ f: HistoryFilter) throws -> [HistoryRow] {
        try pool.with { c in
            var clauses: [String] = [], params: [PGValue] = []
            func bind(_ v: PGValue) -> String { params.append(v); return "$\(params.count)" }
            if let s = f.since { clauses.append("received_at >= \(bind(PGValue(s.timeIntervalSince1970)))") }
            if let s = f.status { clauses.append("status = \(bind(.text(s.rawValue)))") }
            if let l = f.label { clauses.append("(pred_label = \(bind(.text(l))) OR label = \(bind(.text(l))))") }
            if let n = f.node { clauses.append("node = \(bind(.text(n)))") }
            let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            params.append(PGValue(f.limit))
            var out = try rows(
                JobRecord.self,
                c.execute(
                    """
                    SELECT \(PGRowEncoder.jobListColumns) FROM jobs \(whereSQL) ORDER BY received_at DESC, seq DESC LIMIT $\(params.count)
                    """, params)
            ).map(HistoryRow.job)
            if (f.status == nil || f.status == .rejected) && f.label == nil {
                var rc: [String] = [], rp: [PGValue] = []
                if let s = f.since { rp.append(PGValue(s.timeIntervalSince1970)); rc.append("received_at >= $\(rp.count)") }
                if let n = f.node { rp.append(.text(n)); rc.append("node = $\(rp.count)") }
                rp.append(PGValue(f.limit))
                let rw = rc.isEmpty ? "" : "WHERE " + rc.joined(separator: " AND ")
                out += try rows(RefusalRecord.self, c.execute("SELECT * FROM refusals \(rw) ORDER BY received_at DESC, seq DESC LIMIT $\(rp.count)", rp))
                    .map(HistoryRow.refusal)
                out.sort { $0.receivedAt > $1.receivedAt }
            }
            return Array(out.prefix(f.limit))
        }
    }

    private func countMap(_ r: PGResult) -> [String: Int] {
        var out: [String: Int] = [:]
        for row in r.rows {
            guard case .text(let k) = row[0], case .text(let n) = row[1], let v = Int(n) else { continue }
            out[k, default: 0] += v
        }
        return out
    }

    public func counts() throws -> [String: Int] {
        try pool.with { c in
            var out = countMap(try c.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
            if case .text(let n)? = try c.execute("SELECT COUNT(*) FROM refusals").rows.first?.first, let v = Int(n), v > 0 { out["refused"] = v }
            return out
        }
    }

    public func reasonCounts() throws -> [String: Int] {
        try pool.with { c in
            countMap(
                try c.execute(
                    """
                    SELECT reason, COUNT(*) FROM jobs WHERE reason IS NOT NULL GROUP BY reason
                    UNION ALL SELECT reason, COUNT(*) FROM refusals GROUP BY reason
                    """))
        }
    }

    public func finishedJobs(limit: Int) throws -> [JobRecord] {
        try pool.with { c in
            try rows(
                JobRecord.self,
                c.execute(
                    """
                    SELECT \(PGRowEncoder.jobListColumns) FROM jobs WHERE status = 'done' ORDER BY finished_at DESC LIMIT $1
                    """, [PGValue(limit)]))
        }
    }

    public func updateStageStats(run: Int64, stages: [StageStat]) throws {
        try pool.transaction { c in
            for s in stages {
                try c.execute(
                    """
                    INSERT INTO stage_stats (run_id, stage, capacity, high_water, processed, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (run_id, stage) DO UPDATE SET capacity = excluded.capacity,
                        high_water = GREATEST(stage_stats.high_water, excluded.high_water), processed = excluded.processed,
                        updated_at = excluded.updated_at
                    """, [PGValue(run), .text(s.stage), PGValue(s.capacity), PGValue(s.highWater), PGValue(s.processed), PGValue(Self.now)])
            }
        }
    }

    public func stageStats() throws -> [StageStat] {
        try pool.with { c in
            try rows(StageStat.self, c.execute("SELECT run_id, stage, capacity, high_water, processed FROM stage_stats ORDER BY run_id DESC, stage"))
        }
    }

    public func runs(limit: Int) throws -> [RunRow] {
        try pool.with { c in
            try rows(
                RunRow.self,
                c.execute(
                    """
                    SELECT id, version, node, started_at, stopped_at, pack, stages, exit_reason FROM runs ORDER BY id DESC LIMIT $1
                    """, [PGValue(limit)]))
        }
    }

    public func models(run: Int64) throws -> [ModelFile] {
        try pool.with { c in
            try rows(
                ModelFile.self,
                c.execute(
                    "SELECT stage, name, path, sha256, parameters FROM models WHERE run_id = $1 ORDER BY id",
                    [PGValue(run)]))
        }
    }

    // MARK: Maintenance

    public func checkpoint() throws {}

    public func close() throws {
        lockConnection = nil  // ends the session: the node lock goes with it
    }

    public func integrityCheck() throws -> String {
        try pool.with { c in
            _ = try c.execute("SELECT COUNT(*) FROM jobs")
            return "ok"
        }
    }

    // MARK: Retention and backup

    public func prune(_ r: PruneRequest) throws -> Int {
        let statuses = r.statuses.map(\.rawValue).sorted()
        guard !statuses.isEmpty else { return 0 }
        return try pool.transaction { c in
            let chosen = """
                SELECT seq FROM jobs WHERE status = ANY($1::text[]) AND finished_at < $2
                \(r.stillHasBlobs) ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED
                """
            let args: [PGValue] = [.text(Self.textArray(statuses)), PGValue(r.before.timeIntervalSince1970), PGValue(r.limit)]
            var changed =
                try r.action != .deleteRows
                ? c.execute("UPDATE jobs SET \(r.clearBlobs) WHERE seq IN (\(chosen))", args).affected
                : c.execute("DELETE FROM jobs WHERE seq IN (\(chosen))", args).affected
            if r.action == .deleteRows && r.statuses.contains(.rejected) && changed < r.limit {
                changed +=
                    try c.execute(
                        "DELETE FROM refusals WHERE seq IN (SELECT seq FROM refusals WHERE received_at < $1 ORDER BY seq LIMIT $2)",
                        [PGValue(r.before.timeIntervalSince1970), PGValue(r.limit - changed)]
                    ).affected
            }
            return changed
        }
    }

    public func backup(to path: String) throws {
        throw StoreError.failed(
            "PostgreSQL stores are backed up with the server's own tools (pg_dump \(url.redacted), or base backups and WAL archiving)")
    }

    public func vacuum() throws { try pool.with { c in _ = try c.execute("VACUUM jobs") } }
}
