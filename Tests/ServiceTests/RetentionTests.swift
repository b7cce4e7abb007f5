// The retention policy as prune requests, and its sweep's batching, without a daemon.
import Foundation
import JobModel
import Models
import Provenance
import Service
import XCTest

final class RetentionTests: XCTestCase {
    func testPolicyBecomesPruneRequests() {
        let now = Date(timeIntervalSince1970: 1_000_000)
        XCTAssertFalse(Retention(retainDays: 0, retainRejectedDays: 0, keepInputs: true).isActive)
        XCTAssertEqual(Retention(retainDays: 0, retainRejectedDays: 0, keepInputs: true).requests(now: now, batch: 10), [])
        let r = Retention(retainDays: 30, retainRejectedDays: 2, keepInputs: false).requests(now: now, batch: 10)
        XCTAssertEqual(
            r,
            [
                PruneRequest(before: now - 30 * 86_400, statuses: [.done, .failed], action: .deleteRows, limit: 10),
                PruneRequest(before: now - 2 * 86_400, statuses: [.rejected], action: .deleteRows, limit: 10),
                PruneRequest(before: now, statuses: [.done, .rejected, .failed], action: .dropInputs, limit: 10)
            ])
    }

    func testConfigKeys() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("retention-\(UUID().uuidString).toml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "[store]\nretain_days = 30\nretain_rejected_days = 7\nkeep_inputs = false\n".write(toFile: path, atomically: true, encoding: .utf8)
        let c = try DaemonConfig.load(path: path)
        XCTAssertEqual(Retention(c), Retention(retainDays: 30, retainRejectedDays: 7, keepInputs: false))
        try "[store]\nretain_days = -1\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DaemonConfig.load(path: path)) { XCTAssertTrue("\($0)".contains("retain_days"), "\($0)") }
    }

    /// A sweep works in batches and stops after maxBatches (the rest waits for the next sweep).
    func testSweepIsBatchedAndBounded() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-ret-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteJobStore(path: dir + "/db.sqlite")
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47]
        let params = PurificationParameters(strength: 0.1, steps: 50, guidance: 3, seed: 1, ensemble: 1)
        let jobs = (0..<25).map { i in
            JobRecord(
                id: "j\(i)", node: "n", receivedAt: Date(), runId: 1, mode: .pull, peer: nil, input: png, inputSha256: "x", inputFormat: .png,
                width: 1, height: 1, label: nil, meta: nil, requestedParams: nil, params: params, cost: 1)
        }
        _ = try store.insertAccepted(jobs)
        _ = try store.claim(node: "n", limit: 25, isolated: false)
        let results = jobs.map {
            JobResult(id: $0.id, status: .done, stages: [.decode, .classify], stagesRun: [.decode, .classify], inputSha256: "x", params: params)
        }
        _ = try store.finish(results, run: 1, node: "n")
        let policy = Retention(retainDays: 1e-9, retainRejectedDays: 0, keepInputs: true)
        Thread.sleep(forTimeInterval: 0.01)
        XCTAssertEqual(try policy.sweep(store, batch: 4, maxBatches: 3), 12, "3 batches of 4, then the sweep yields")
        XCTAssertEqual(try policy.sweep(store, batch: 4, maxBatches: 3), 12)
        XCTAssertEqual(try policy.sweep(store, batch: 4, maxBatches: 3), 1)
        XCTAssertEqual(try store.counts(), [:])
    }
}
