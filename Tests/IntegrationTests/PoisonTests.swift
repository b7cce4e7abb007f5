// Poison jobs: a job that kills lgapd fails alone, after max_attempts deaths while it ran alone; every
// innocent job that shared a micro-batch with it is done. The crash journal narrows the blame to the
// stage that died. An operator can re-queue the failed jobs (lgapctl retry).
import Foundation
import JobModel
import Messaging
import Provenance
import ServiceHarness
import XCTest

final class PoisonTests: ServiceTestCase {
    func testOnlyThePoisonJobsFail() throws {
        // 18 jobs, 3 of which kill the purify stage (LGAP_TEST_CRASH), in micro-batches of up to 8.
        var options = DaemonProcess.Options(mode: "router", pack: try slowPack(steps: 8), sections: ["pipeline": ["max_attempts": "2"]])
        options.environment = ["LGAP_TEST_CRASH": "purify:poison-"]
        let daemon = try startDaemon(options)
        let dealer = try producer(daemon, .dealer)
        let png = try TestImages.png
        var ids: [String] = []
        for i in 0..<18 {
            let id = [3, 9, 14].contains(i) ? "poison-\(i)" : "innocent-\(i)"
            ids.append(id)
            try dealer.send(header: ["id": id], image: png)
        }
        for id in ids { XCTAssertEqual(try dealer.ack().id, id) }
        let store = try store(daemon)
        // Like systemd's Restart=on-failure: start it again whenever it dies, until every job is final.
        let restarts = try superviseUntilFinal(daemon, ids: ids, store: store, timeout: 240)
        XCTAssertGreaterThanOrEqual(restarts, 3, "each poison job killed the daemon at least once")
        for id in ids {
            let j = try XCTUnwrap(store.job(id))
            if id.hasPrefix("poison") {
                XCTAssertEqual(j.status, .failed, id)
                XCTAssertEqual(j.reason, .tooManyAttempts, id)
            } else {
                XCTAssertEqual(j.status, .done, "\(id): innocent, \(j.reason?.rawValue ?? "")")
                XCTAssertLessThanOrEqual(j.attempts, 1, "\(id): at most one run alone, which it survived")
            }
        }
        XCTAssertTrue(daemon.log.contains("suspects will run alone") || restarts > 0)
        stop(daemon)

        // The operator fixes the cause (here: disarms the fault) and re-queues the failed jobs.
        let r = try DaemonProcess.run("lgapctl", arguments: ["retry", "--status", "failed", "--db", daemon.database], directory: tmp)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("re-queued 3"), r.stdout)
        var clean = options
        clean.environment = [:]
        let again = try startDaemon(clean, name: "after-retry", database: daemon.database)
        try waitUntil("the re-queued jobs done", timeout: 60, daemon: again) {
            try ids.filter { $0.hasPrefix("poison") }.allSatisfy { try store.job($0)?.status == .done }
        }
        stop(again)
    }

    /// The journal names the stage: a crash in classify makes suspects of the jobs inside classify only.
    func testCrashJournalNamesTheStage() throws {
        var options = DaemonProcess.Options(mode: "router", pack: try slowPack(steps: 8), sections: ["pipeline": ["max_batch": "1"]])
        options.environment = ["LGAP_TEST_CRASH": "classify:poison-"]
        let daemon = try startDaemon(options)
        let dealer = try producer(daemon, .dealer)
        XCTAssertEqual(try dealer.submit(header: ["id": "poison-1"], image: try TestImages.png).status, .accepted)
        XCTAssertNotNil(daemon.waitForExit(timeout: 60), "the poison job kills the daemon")
        XCTAssertTrue(daemon.log.contains("Fatal error: LGAP_TEST_CRASH"), daemon.logTail)
        let journal = try String(contentsOfFile: daemon.directory + "/\(DaemonProcess.defaultNode).crash", encoding: .utf8)
        XCTAssertTrue(journal.hasPrefix("classify "), "journal: \(journal)")
        try daemon.start(samePorts: true)
        XCTAssertTrue(daemon.log.contains("stage=classify"), daemon.logTail)
        XCTAssertTrue(daemon.log.contains("suspects=1"), daemon.logTail)
        daemon.kill()
    }
}
