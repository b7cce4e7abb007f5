// The JobStore contract, written against the protocol: every check runs on every backend available —
// SQLite always, PostgreSQL when $LGAP_TEST_POSTGRES names a server (CI starts one with
// scripts/test-postgres.sh; with CI=true a missing server is a failure, not a skip). No sockets, no
// daemon: the store alone.
import Digest
import Foundation
import GRDB
import ImageIO
import JobModel
import Models
import Provenance
import ServiceHarness
import XCTest

final class JobStoreContractTests: XCTestCase {
    private var cleanups: [() -> Void] = []

    override func tearDown() {
        for c in cleanups.reversed() { c() }
        cleanups = []
        super.tearDown()
    }

    /// A fresh, empty store of each backend.
    func backends() throws -> [(name: String, make: () throws -> JobStore)] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-store-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        cleanups.append { try? FileManager.default.removeItem(atPath: dir) }
        var out: [(String, () throws -> JobStore)] = [("sqlite", { try SQLiteJobStore(path: dir + "/db.sqlite") })]
        if let url = ProcessInfo.processInfo.environment["LGAP_TEST_POSTGRES"] {
            let db = try TestDatabase(adminURL: url)
            cleanups.append { db.drop() }
            out.append(("postgres", { try PostgresJobStore(url: db.url, passwordFile: nil, migrate: true) }))
        } else if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail("CI runs the contract suite on PostgreSQL too: LGAP_TEST_POSTGRES is not set (see scripts/test-postgres.sh)")
        }
        return out
    }

    /// Runs `check` on a fresh store of every backend, naming the backend in failures.
    func eachBackend(_ check: (JobStore, String) throws -> Void) throws {
        for (name, make) in try backends() {
            let store = try make()
            try check(store, name)
        }
    }

    static let png: [UInt8] = {
        let rgb = RGBImage(width: 4, height: 2, pixels: (0..<24).map { UInt8($0 * 10) })
        return (try? ImageCodec.encodePNG(rgb)) ?? []
    }()

    func job(_ id: String, node: String = "n1", label: String? = nil, seed: UInt64 = 7, received: Date = Date()) -> JobRecord {
        JobRecord(
            id: id, node: node, receivedAt: received, runId: 1, mode: .router, peer: "127.0.0.1/abcd", input: Self.png,
            inputSha256: SHA256.hex(Self.png), inputFormat: .png, width: 4, height: 2, label: label, meta: #"{"camera":"7"}"#,
            requestedParams: JobParams(strength: 0.2, seed: seed),
            params: PurificationParameters(
                strength: 0.2, steps: 50, guidance: 3,
                seed: seed, ensemble: 5), cost: 1234)
    }

    func result(_ id: String, status: JobStatus = .done) -> JobResult {
        var r = JobResult(
            id: id, status: status, stages: [.decode, .classify], stagesRun: [.decode, .classify], inputSha256: SHA256.hex(Self.png),
            params: PurificationParameters(strength: 0.2, steps: 50, guidance: 3, seed: 7, ensemble: 5), timingsMs: ["decode": 0.5])
        if status == .done {
            r.caption = "a cat"; r.captionTokens = [30522, 1037, 4937, 102]; r.captionScore = -0.25
            r.label = "cat"; r.labelIndex = 3; r.confidence = 0.875
            r.topK = [RankedClass(index: 3, label: "cat", probability: 0.875)]
            r.consistency = .consistent; r.purifiedSha256 = "ab"; r.purifiedPNG = Self.png
        } else {
            r.failure = JobFailure(status, .purifyError, "boom")
        }
        return r
    }

    func inserted(_ s: JobStore, _ j: JobRecord) throws -> Int64 {
        guard case .inserted(let seq) = try s.insertAccepted(j) else { throw XCTSkip("\(j.id) was a duplicate") }
        return seq
    }

    // MARK: The checks

    func testAcceptedJobRoundTripsAndIdsAreUnique() throws {
        try eachBackend { s, name in
            let a = job("a"), b = job("b", node: "n2")
            let seqA = try inserted(s, a), seqB = try inserted(s, b)
            XCTAssertLessThan(seqA, seqB, "\(name): acceptance order")
            var read = try XCTUnwrap(s.job("a"))
            XCTAssertEqual(read.seq, seqA)
            read.seq = nil
            var expected = a
            expected.receivedAt = read.receivedAt  // stored as epoch seconds: compare to the microsecond below
            XCTAssertEqual(read, expected, name)
            XCTAssertEqual(read.receivedAt.timeIntervalSince1970, a.receivedAt.timeIntervalSince1970, accuracy: 1e-5)
            XCTAssertEqual(try s.insertAccepted(job("a", node: "n2")), .duplicate, "\(name): an id is taken fleet-wide")
            XCTAssertEqual(try s.job("a")?.node, "n1", "\(name): a duplicate changes nothing")
        }
    }

    func testRefusalsAreRowsOfTheirOwn() throws {
        try eachBackend { s, name in
            for reason in [ReasonCode.badParams, .tooExpensive] {
                try s.insertRefusal(
                    RefusalRecord(
                        claimedId: "x", reason: reason, error: "no", node: "n1", receivedAt: Date(), runId: 1,
                        mode: .router, peer: nil, inputSha256: nil, inputSize: 3, header: "{}"))
            }
            try s.insertRefusal(
                RefusalRecord(
                    claimedId: nil, reason: .badHeader, error: "no", node: "n1", receivedAt: Date(), runId: 1,
                    mode: .pull, peer: nil, inputSha256: nil, inputSize: nil, header: nil))
            XCTAssertEqual(try s.refusals(claimedID: "x").map(\.reason), [.tooExpensive, .badParams], "\(name): newest first, both kept")
            XCTAssertNil(try s.job("x"), name)
            XCTAssertEqual(try s.counts(), ["refused": 3], name)
            XCTAssertEqual(try s.reasonCounts(), ["bad_params": 1, "too_expensive": 1, "bad_header": 1], name)
            XCTAssertEqual(try s.history(HistoryFilter(status: .rejected)).count, 3, name)
            XCTAssertEqual(try s.history(HistoryFilter(status: .done)).count, 0, name)
            // An id refused before may be accepted later.
            _ = try inserted(s, job("x"))
            XCTAssertEqual(try s.job("x")?.status, .accepted, name)
        }
    }

    func testClaimTakesOwnJobsOldestFirstOnce() throws {
        try eachBackend { s, name in
            for i in 0..<5 { _ = try inserted(s, job("j\(i)")) }
            _ = try inserted(s, job("other", node: "n2"))
            var suspect = job("sus")
            suspect.suspect = true
            _ = try inserted(s, suspect)
            let first = try s.claim(node: "n1", limit: 3, isolated: false)
            XCTAssertEqual(first.map(\.id), ["j0", "j1", "j2"], name)
            XCTAssertTrue(first.allSatisfy { $0.status == .processing && $0.input != nil && $0.stage == nil && $0.attempts == 0 }, name)
            XCTAssertEqual(try s.claim(node: "n1", limit: 10, isolated: false).map(\.id), ["j3", "j4"], "\(name): never the same job twice")
            XCTAssertEqual(try s.claim(node: "n1", limit: 10, isolated: false).map(\.id), [], "\(name): not another node's, not a suspect")
            XCTAssertEqual(try s.backlog(node: "n1").suspects, 1, name)
            let alone = try s.claim(node: "n1", limit: 1, isolated: true)
            XCTAssertEqual(alone.map(\.id), ["sus"], name)
            XCTAssertEqual(alone.first?.attempts, 1, "\(name): a run alone counts an attempt")
            XCTAssertEqual(try s.backlog(node: "n1").normal + (try s.backlog(node: "n1").suspects), 0, name)
        }
    }

    func testRecoveryBlamesOnlyTheStageThatDied() throws {
        try eachBackend { s, name in
            for i in 0..<6 { _ = try inserted(s, job("r\(i)")) }
            _ = try s.claim(node: "n1", limit: 6, isolated: false)
            try s.setStage(.caption, ids: ["r0", "r1"], node: "n1")
            try s.setStage(.purify, ids: ["r2", "r3"], node: "n1")
            try s.setStage(.purify, ids: ["r3"], node: "other")  // not its owner: ignored
            // r4: left a stage; r5: claimed, waiting in a queue.
            try s.setStage(.classify, ids: ["r4"], node: "n1")
            try s.setStage(nil, ids: ["r4"], node: "n1")
            XCTAssertEqual(try s.recover(node: "n1", crashedStage: .purify), Recovery(requeued: 4, suspects: 2), name)
            for id in ["r2", "r3"] { XCTAssertEqual(try s.job(id)?.suspect, true, "\(name): \(id) was inside purify") }
            for id in ["r0", "r1", "r4", "r5"] {
                let j = try s.job(id)
                XCTAssertEqual(j?.suspect, false, "\(name): \(id) innocent")
                XCTAssertEqual(j?.status, .accepted, name)
                XCTAssertNil(j?.stage, name)
            }
            // Unknown cause: everything in flight is a suspect.
            _ = try s.claim(node: "n1", limit: 10, isolated: false)
            XCTAssertEqual(try s.recover(node: "n1", crashedStage: nil), Recovery(requeued: 0, suspects: 4), name)
        }
    }

    func testFinishOnceAndOnlyByTheOwner() throws {
        try eachBackend { s, name in
            _ = try inserted(s, job("f"))
            _ = try inserted(s, job("g"))
            _ = try s.claim(node: "n1", limit: 2, isolated: false)
            XCTAssertEqual(try s.finish([result("f")], run: 2, node: "n2"), [false], "\(name): not the owner")
            XCTAssertEqual(try s.finish([result("f"), result("g", status: .failed)], run: 2, node: "n1"), [true, true], name)
            XCTAssertEqual(try s.finish([result("f")], run: 2, node: "n1"), [false], "\(name): finished already")
            let f = try XCTUnwrap(s.job("f"))
            XCTAssertEqual(f.status, .done)
            XCTAssertEqual(f.caption, "a cat")
            XCTAssertEqual(f.captionTokens, [30522, 1037, 4937, 102])
            XCTAssertEqual(f.topK, [RankedClass(index: 3, label: "cat", probability: 0.875)])
            XCTAssertEqual(f.timings, ["decode": 0.5])
            XCTAssertEqual(f.consistency, .consistent)
            XCTAssertEqual(f.purified.map { [UInt8]($0) }, Self.png, "\(name): the purified image's bytes")
            XCTAssertEqual(f.finishedRunId, 2)
            XCTAssertNil(f.stage)
            XCTAssertEqual(try s.job("g")?.failure, JobFailure(.failed, .purifyError, "boom"), name)
            XCTAssertEqual(try s.finishedJobs(limit: 10).map(\.id), ["f"], name)
            XCTAssertNil(try s.finishedJobs(limit: 10).first?.input, "\(name): lists carry no blobs")
            // An operator re-queues the failed one.
            XCTAssertEqual(try s.retry(ids: ["g", "f", "nope"], node: ""), 1, name)
            XCTAssertEqual(try s.job("g")?.status, .accepted)
            XCTAssertNil(try s.job("g")?.reason)
        }
    }

    func testReleaseReturnsUnfinishedJobsAsInnocent() throws {
        try eachBackend { s, name in
            for i in 0..<3 { _ = try inserted(s, job("c\(i)")) }
            _ = try s.claim(node: "n1", limit: 2, isolated: false)
            try s.setStage(.purify, ids: ["c0"], node: "n1")
            XCTAssertEqual(try s.release(node: "n1"), 2, name)
            XCTAssertEqual(try s.backlog(node: "n1").normal, 3, name)
            XCTAssertEqual(try s.recover(node: "n1", crashedStage: nil), Recovery(), "\(name): after a clean stop nothing is in flight")
        }
    }

    func testTakeOverMovesADeadNodesJobsExactlyOnce() throws {
        try eachBackend { s, name in
            for i in 0..<40 { _ = try inserted(s, job("t\(i)", node: "dead")) }
            _ = try inserted(s, job("alive-job", node: "alive"))
            try s.heartbeat(NodeHeartbeat(node: "alive", run: 1, host: "h", pid: 1, state: "ready", running: 0, finished: 0))
            try s.heartbeat(NodeHeartbeat(node: "dead", run: 1, host: "h", pid: 2, state: "ready", running: 0, finished: 0))
            _ = try s.claim(node: "dead", limit: 4, isolated: false)
            try s.setStage(.purify, ids: ["t0", "t1"], node: "dead")
            XCTAssertEqual(try s.takeOver(node: "s1", lease: 3600, limit: 100), 0, "\(name): a fresh heartbeat keeps its jobs")
            Thread.sleep(forTimeInterval: 0.3)
            // Two survivors (heartbeating, so each sees the other alive) race for them.
            for n in ["s0", "s1"] { try s.heartbeat(NodeHeartbeat(node: n, run: 1, host: "h", pid: 3, state: "ready", running: 0, finished: 0)) }
            let moved = Counts()
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                moved.set(i, (try? s.takeOver(node: "s\(i)", lease: 0.2, limit: 1000)) ?? -1)
            }
            let counts = moved.values
            // The alive node's job moved too (its heartbeat is as old): compare per node instead.
            let taken = try (0..<40).map { try XCTUnwrap(s.job("t\($0)")) }
            XCTAssertTrue(taken.allSatisfy { $0.node == "s0" || $0.node == "s1" }, "\(name): \(taken.map(\.node))")
            XCTAssertEqual(counts.reduce(0, +), 41, "\(name): every job moved once (\(counts))")
            XCTAssertEqual(taken.filter(\.suspect).map(\.id).sorted(), ["t0", "t1"], "\(name): in a model stage when it died")
            XCTAssertTrue(taken.allSatisfy { $0.status == .accepted && $0.stage == nil }, name)
            XCTAssertEqual(try s.finish([result("t2")], run: 9, node: "dead"), [false], "\(name): the dead node can no longer finish it")
        }
    }

    /// Pruning deletes (or strips the images of) finished jobs past the horizon in batches, never an
    /// unfinished one; rejected also takes refusals; a job without its input cannot be re-queued.
    func testPruneRemovesOnlyFinishedJobsPastTheHorizon() throws {
        try eachBackend { s, name in
            for i in 0..<7 { _ = try inserted(s, job("p\(i)")) }
            _ = try s.claim(node: "n1", limit: 7, isolated: false)
            _ = try s.finish((0..<4).map { result("p\($0)") } + [result("p4", status: .failed)], run: 1, node: "n1")
            try s.insertRefusal(
                RefusalRecord(
                    claimedId: "r1", reason: .badHeader, error: "x", node: "n1", receivedAt: Date(), runId: 1, mode: .pull, peer: nil,
                    inputSha256: nil, inputSize: nil, header: nil))
            // p5 is processing, p6 accepted-then-claimed: unfinished, never pruned.
            let future = Date(timeIntervalSinceNow: 60)
            XCTAssertEqual(try s.prune(PruneRequest(before: Date(timeIntervalSinceNow: -60))), 0, "\(name): nothing is that old")
            // Images only, inputs only: rows stay.
            XCTAssertEqual(try s.prune(PruneRequest(before: future, statuses: [.failed], action: .dropInputs)), 1, name)
            XCTAssertNil(try s.job("p4")?.input, name)
            XCTAssertEqual(try s.retry(ids: ["p4"], node: ""), 0, "\(name): no input, nothing to re-run")
            XCTAssertEqual(try s.prune(PruneRequest(before: future, statuses: [.done], action: .dropImages, limit: 3)), 3, "\(name): one batch")
            XCTAssertEqual(try s.prune(PruneRequest(before: future, statuses: [.done], action: .dropImages, limit: 3)), 1, name)
            XCTAssertEqual(try s.prune(PruneRequest(before: future, statuses: [.done], action: .dropImages, limit: 3)), 0, name)
            let stripped = try XCTUnwrap(s.job("p0"))
            XCTAssertNil(stripped.input, name)
            XCTAssertNil(stripped.purified, name)
            XCTAssertEqual(stripped.predLabel, "cat", "\(name): results stay")
            XCTAssertEqual(stripped.inputSha256, SHA256.hex(Self.png), "\(name): provenance stays")
            // Rows.
            XCTAssertEqual(try s.prune(PruneRequest(before: future, statuses: [.done, .rejected], limit: 100)), 5, "\(name): 4 done + 1 refusal")
            XCTAssertNil(try s.job("p0"), name)
            XCTAssertEqual(try s.refusals(claimedID: "r1"), [], name)
            XCTAssertEqual(try s.prune(PruneRequest(before: future, statuses: [.done, .rejected, .failed], limit: 100)), 1, "\(name): p4")
            XCTAssertEqual(try s.counts(), ["processing": 2], "\(name): unfinished jobs untouched")
            try s.vacuum()
        }
    }

    /// A backup taken while another connection keeps committing is one consistent, complete file.
    func testSQLiteBackupIsACompleteSnapshotWhileWriting() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-backup-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try SQLiteJobStore(path: dir + "/db.sqlite")
        for i in 0..<200 { _ = try inserted(writer, job("b\(i)")) }
        let reader = try SQLiteJobStore(readingAt: dir + "/db.sqlite")
        let writing = DispatchGroup()
        writing.enter()
        let later = (200..<600).map { job("b\($0)") }
        DispatchQueue.global().async {
            for j in later { _ = try? writer.insertAccepted(j) }
            writing.leave()
        }
        try reader.backup(to: dir + "/copy.sqlite")
        writing.wait()
        XCTAssertThrowsError(try reader.backup(to: dir + "/copy.sqlite"), "a backup never overwrites")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/copy.sqlite-wal"), "complete without a WAL")
        let copy = try SQLiteJobStore(readingAt: dir + "/copy.sqlite")
        XCTAssertEqual(try copy.integrityCheck(), "ok")
        let n = try XCTUnwrap(copy.counts()["accepted"])
        XCTAssertGreaterThanOrEqual(n, 200)
        // A snapshot: exactly the first n jobs, each whole (its input bytes too).
        for i in 0..<n { XCTAssertEqual(try copy.job("b\(i)")?.input.map { [UInt8]($0) }, Self.png, "b\(i)") }
        XCTAssertNil(try copy.job("b\(n)"), "nothing after the snapshot")
    }

    func testQueriesRunsModelsNodesAndStageStats() throws {
        try eachBackend { s, name in
            let run = try s.beginRun(RunInfo(version: "t", node: "n1", host: "h", pid: 42, config: "{}", pack: "/p", stages: [.decode, .classify]))
            try s.recordModels([ModelFile(stage: .classify, name: "resnet", path: "/p/c", sha256: "ff", parameters: 10)], run: run)
            XCTAssertEqual(try s.models(run: run).map(\.name), ["resnet"], name)
            try s.updateStageStats(run: run, stages: [StageStat(runId: run, stage: "decode", capacity: 8, highWater: 5, processed: 10)])
            try s.updateStageStats(run: run, stages: [StageStat(runId: run, stage: "decode", capacity: 8, highWater: 3, processed: 12)])
            XCTAssertEqual(try s.stageStats().first, StageStat(runId: run, stage: "decode", capacity: 8, highWater: 5, processed: 12), name)
            let old = Date(timeIntervalSinceNow: -3600)
            _ = try inserted(s, job("old", label: "cat", received: old))
            _ = try inserted(s, job("new", label: "dog"))
            XCTAssertEqual(try s.history(HistoryFilter(since: Date(timeIntervalSinceNow: -60))).count, 1, name)
            XCTAssertEqual(try s.history(HistoryFilter(label: "cat")).count, 1, name)
            XCTAssertEqual(try s.history(HistoryFilter(node: "n2")).count, 0, name)
            try s.heartbeat(NodeHeartbeat(node: "n1", run: run, host: "h", pid: 42, state: "ready", running: 2, finished: 5))
            let node = try XCTUnwrap(s.nodes().first { $0.name == "n1" })
            XCTAssertEqual([node.running, node.finished, node.owned], [2, 5, 2], name)
            try s.endRun(run, reason: "sigterm")
            XCTAssertEqual(try s.runs(limit: 1).first?.exitReason, "sigterm", name)
            XCTAssertEqual(try s.nodes().first { $0.name == "n1" }?.state, "stopped", name)
            XCTAssertEqual(try s.integrityCheck(), "ok", name)
        }
    }

    /// SQLite: a clean close leaves a complete main file (WAL checkpointed into it and emptied).
    func testSQLiteCloseLeavesTheMainFileComplete() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-close-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteJobStore(path: dir + "/db.sqlite")
        for i in 0..<20 { _ = try inserted(store, job("w\(i)")) }
        try store.close()
        let wal = (try? FileManager.default.attributesOfItem(atPath: dir + "/db.sqlite-wal")[.size] as? Int) ?? 0
        XCTAssertEqual(wal, 0, "the WAL is empty after a clean close")
        // The main file alone (copied without its WAL) holds every row.
        try FileManager.default.copyItem(atPath: dir + "/db.sqlite", toPath: dir + "/copy.sqlite")
        let copy = try DatabaseQueue(path: dir + "/copy.sqlite")
        XCTAssertEqual(try copy.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM jobs") }, 20)
    }
}

/// Per-thread results of a concurrent race.
final class Counts: @unchecked Sendable {
    private let lock = NSLock()
    private var v = [0, 0]
    func set(_ i: Int, _ n: Int) { lock.lock(); v[i] = n; lock.unlock() }
    var values: [Int] { lock.lock(); defer { lock.unlock() }; return v }
}
