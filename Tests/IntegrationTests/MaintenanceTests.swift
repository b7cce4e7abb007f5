// The store's upkeep against a running lgapd: a backup taken under load restores every job acked
// before it began; the daemon's retention sweep deletes old finished jobs and drops inputs while it
// keeps serving; lgapctl prune refuses nonsense and leaves unfinished jobs alone.
import Foundation
import JobModel
import Messaging
import Provenance
import ServiceHarness
import XCTest

final class MaintenanceTests: ServiceTestCase {
    func testBackupUnderLoadHoldsEveryJobAckedBeforeIt() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: try fastPack()))
        let png = try TestImages.png
        let context = self.context!
        let endpoint = daemon.ingestEndpoint
        let acked = LockedIDs()
        let stopProducer = DispatchSemaphore(value: 0), producerDone = DispatchSemaphore(value: 0)
        Thread {
            defer { producerDone.signal() }
            guard let p = try? Producer(context: context, .dealer, endpoint: endpoint) else { return }
            var i = 0
            while stopProducer.wait(timeout: .now()) == .timedOut {
                if let ack = try? p.submit(header: ["id": "load-\(i)"], image: png), ack.status == .accepted { acked.add("load-\(i)") }
                i += 1
            }
        }.start()
        try waitUntil("500 jobs acked", timeout: 60, daemon: daemon) { acked.count >= 500 }
        let ackedBefore = acked.all
        let copy = tmp + "/backup.sqlite"
        let out = try DaemonProcess.runTool(try DaemonProcess.product("lgapctl"), ["backup", "--db", daemon.database, copy])
        XCTAssertTrue(out.contains("backed up"), out)
        Thread.sleep(forTimeInterval: 0.3)
        stopProducer.signal()
        producerDone.wait()
        XCTAssertGreaterThan(acked.count, ackedBefore.count, "intake went on during the backup")
        // Restore: the copy is a store of its own.
        let restored = try StoreLocation(copy).openForQueries()
        XCTAssertEqual(try restored.integrityCheck(), "ok")
        let missing = try ackedBefore.filter { try restored.job($0) == nil }
        XCTAssertEqual(missing, [], "every job acked before the backup is in it")
        stop(daemon)
    }

    func testRetentionSweepDeletesOldJobsAndDropsInputsWhileServing() throws {
        var options = DaemonProcess.Options(mode: "router", pack: try fastPack())
        // Finished jobs live 3 s (retain_days is fractional); inputs are dropped at once.
        options.sections["store"] = ["retain_days": "\(3.0 / 86_400)", "keep_inputs": "false", "retention_interval_s": "0.5"]
        let daemon = try startDaemon(options)
        let store = try store(daemon)
        let png = try TestImages.png
        let p = try producer(daemon, .dealer)
        for i in 0..<40 { XCTAssertEqual(try p.submit(header: ["id": "old-\(i)"], image: png).status, .accepted) }
        try waitUntil("inputs dropped", timeout: 30, daemon: daemon) {
            try (0..<40).allSatisfy { try store.job("old-\($0)").map { $0.status == .done && $0.input == nil } ?? false }
        }
        let kept = try XCTUnwrap(try store.job("old-0"))
        XCTAssertEqual(kept.inputSha256.count, 64, "provenance stays after the input goes")
        XCTAssertNotNil(kept.predLabel, "the result stays")
        // Later jobs are served while the old ones expire.
        for i in 0..<40 { XCTAssertEqual(try p.submit(header: ["id": "new-\(i)"], image: png).status, .accepted) }
        try waitUntil("the old jobs deleted", timeout: 30, daemon: daemon) { try store.job("old-39") == nil }
        XCTAssertNotNil(try store.job("new-39"), "younger jobs stay")
        XCTAssertTrue(daemon.log.contains("retention"), daemon.logTail)
        stop(daemon)
    }

    func testPruneRefusesUnfinishedStatusesAndBadHorizons() throws {
        let lgapctl = try DaemonProcess.product("lgapctl")
        let db = tmp + "/empty.sqlite"
        _ = try SQLiteJobStore(path: db)
        XCTAssertThrowsError(try DaemonProcess.runTool(lgapctl, ["prune", "--db", db, "--older-than", "30d", "--status", "accepted"]))
        XCTAssertThrowsError(try DaemonProcess.runTool(lgapctl, ["prune", "--db", db, "--older-than", "soon"]))
        let out = try DaemonProcess.runTool(lgapctl, ["prune", "--db", db, "--older-than", "30d", "--vacuum"])
        XCTAssertTrue(out.contains("deleted 0 row(s)"), out)
    }
}

final class LockedIDs: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [String] = []
    func add(_ id: String) { lock.lock(); ids.append(id); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return ids }
    var count: Int { all.count }
}
