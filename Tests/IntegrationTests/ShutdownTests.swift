// SIGTERM with jobs in flight: lgapd stops intake, drains the stages and exits 0 with every accepted job
// finished and its run row closed; past shutdown_timeout_s it exits 0 anyway, leaving the unfinished
// jobs accepted in SQLite for the next start.
import Foundation
import Messaging
import Provenance
import JobModel
import ServiceHarness
import XCTest

final class ShutdownTests: ServiceTestCase {
    /// Submits `count` jobs (router mode), waits for their acks and for the first to start.
    func submitInFlight(_ daemon: DaemonProcess, count: Int, prefix: String, results: ResultCollector? = nil) throws -> [String] {
        let dealer = try producer(daemon, .dealer)
        if let results { try subscribe(results, via: dealer) }
        let images = try TestImages.good()
        let ids = (0..<count).map { "\(prefix)-\($0)" }
        for (i, id) in ids.enumerated() { try dealer.send(header: ["id": id], image: images[i % images.count].bytes) }
        for id in ids { XCTAssertEqual(try dealer.ack(), Ack(id: id, status: .accepted)) }
        let store = try store(daemon)
        try waitUntil("the first job started", timeout: 60, daemon: daemon) { try store.job(ids[0])?.status != .accepted }
        return ids
    }

    func testSigtermRightAfterReadyIsNeverLost() throws {
        // lgapd used to ignore SIGTERM until libdispatch had armed its signal source on another thread;
        // a supervisor signalling as soon as READY=1 could hit that window and the daemon ran on.
        // Start and stop it ten times with no delay at all between "ready" and SIGTERM.
        for i in 0..<10 {
            let daemon = try startDaemon(.init(pack: Self.defaultPack), name: "ready-\(i)")
            daemon.signal(SIGTERM)
            XCTAssertEqual(daemon.waitForExit(timeout: 20), 0, "start \(i): \(daemon.logTail)")
        }
    }

    func testSigtermDrainsJobsInFlight() throws {
        let timeout = 60.0
        let daemon = try startDaemon(
            .init(
                mode: "router", pack: try slowPack(steps: 30),
                sections: ["daemon": ["shutdown_timeout_s": "\(Int(timeout))"]]))
        let results = try collector(daemon)
        let ids = try submitInFlight(daemon, count: 5, prefix: "drain", results: results)
        let store = try store(daemon)
        let unfinished = try ids.filter { try store.job($0)?.status != .done }
        XCTAssertGreaterThanOrEqual(unfinished.count, 3, "jobs in flight at SIGTERM")

        let t0 = Date()
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: timeout + 10), 0, daemon.logTail)
        XCTAssertLessThan(Date().timeIntervalSince(t0), timeout, "exit within shutdown_timeout_s")
        for id in ids { XCTAssertEqual(try store.job(id)?.status, .done, "\(id): drained before exit") }
        XCTAssertEqual(results.wait(for: ids, timeout: 5), [], "results of the drained jobs were published")
        let run = try store.runs(limit: 1).first
        XCTAssertNotNil(run?.stoppedAt, "the run row records the stop")
        XCTAssertEqual(run?.exitReason, "sigterm")
        XCTAssertTrue(daemon.log.contains("drained=true"), daemon.logTail)
    }

    func testSigtermPastShutdownTimeoutExitsAndKeepsJobs() throws {
        // ~4 s per job: a 1 s shutdown budget cannot drain them.
        let daemon = try startDaemon(.init(mode: "router", pack: try slowPack(steps: 400), sections: ["daemon": ["shutdown_timeout_s": "1"]]))
        let ids = try submitInFlight(daemon, count: 3, prefix: "slow")
        let t0 = Date()
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 20), 0, daemon.logTail)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1 + 5, "exit soon after shutdown_timeout_s")
        let store = try store(daemon)
        let statuses = try ids.map { try store.job($0)?.status }
        XCTAssertTrue(statuses.allSatisfy { $0 == .accepted || $0 == .done }, "no job lost or failed, none left processing: \(statuses)")
        XCTAssertGreaterThanOrEqual(statuses.filter { $0 != .done }.count, 2, "left for the next start: \(statuses)")
        XCTAssertEqual(try unfinished(store).sorted(), zip(ids, statuses).filter { $0.1 != .done }.map(\.0).sorted())
        let run = try store.runs(limit: 1).first
        XCTAssertNotNil(run?.stoppedAt)
        XCTAssertTrue(run?.exitReason?.contains("timeout") ?? false, run?.exitReason ?? "no exit reason")
        XCTAssertEqual(try store.integrityCheck(), "ok")
    }

    /// shutdown_timeout_s = 0, loaded and idle, six times over: nothing is waited for, yet lgapd exits 0 —
    /// no ZeroMQ socket is closed under a thread still using it — and every accepted job is kept, then
    /// finished by the next start.
    func testSigtermWithZeroShutdownTimeoutUnderLoad() throws {
        let daemon = try startDaemon(
            .init(
                mode: "pull", pack: try fastPack(),
                sections: ["daemon": ["shutdown_timeout_s": "0"], "pipeline": ["queue_capacity": "2", "max_batch": "1"]]))
        let store = try store(daemon)
        let firstRun = try XCTUnwrap(store.runs(limit: 1).first?.id)  // a start retried on other ports leaves older rows
        var push: Producer? = try producer(daemon, .push)
        let png = try TestImages.png
        // Loaded rounds stop with work in every stage; idle ones with ingest inside its receive call.
        let rounds = 6
        for round in 0..<rounds {
            if round > 0 { try daemon.start(samePorts: true) }
            if round % 2 == 0 {
                let doneBefore = try store.counts()["done"] ?? 0
                for i in 0..<100 { try push?.send(header: ["id": "zero-\(round)-\(i)"], image: png) }
                try waitUntil("round \(round) under way", timeout: 60, daemon: daemon) { (try store.counts()["done"] ?? 0) >= doneBefore + 5 }
            }
            XCTAssertEqual(daemon.terminate(timeout: 10), 0, "round \(round)\n\(daemon.logTail)")
        }
        let runs = try store.runs(limit: 100).filter { $0.id >= firstRun }
        XCTAssertEqual(runs.count, rounds)
        XCTAssertTrue(runs.allSatisfy { $0.stoppedAt != nil }, "every run recorded its stop")
        // The next start resumes whatever was accepted and not finished (and gets nothing new: the
        // producer, with whatever it still queues, is gone).
        push = nil
        try daemon.start(samePorts: true)
        try waitUntil("every accepted job done", timeout: 60, daemon: daemon) { try unfinished(store).isEmpty }
        XCTAssertEqual(Set(try store.counts().keys), ["done"])
        XCTAssertEqual(try store.integrityCheck(), "ok")
        stop(daemon)
    }
}
