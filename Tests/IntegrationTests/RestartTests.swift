// kill -9 and restart: every job lgapd acknowledged survives in SQLite, the next start resumes the
// unfinished ones with the parameters and seed fixed at acceptance, each finishes 'done' exactly once
// and its result is published after the restart.
import Foundation
import Messaging
import Models
import Provenance
import Digest
import JobModel
import ServiceHarness
import XCTest

final class RestartTests: ServiceTestCase {
    func testRestartResumesUnfinishedJobs() throws {
        // ~1 s per job at 100 DDIM steps on this machine: a kill after the first leaves the rest unfinished
        // (one job per micro-batch, else the six would share one denoising loop and finish together).
        let daemon = try startDaemon(.init(mode: "router", pack: try slowPack(steps: 100), sections: ["pipeline": ["max_batch": "1"]]))
        let results = try collector(daemon)  // same ports after the restart: it reconnects by itself
        let dealer = try producer(daemon, .dealer)
        let images = try TestImages.good().prefix(6)
        let ids = images.indices.map { "resume-\($0)" }
        for (id, image) in zip(ids, images) { try dealer.send(header: ["id": id, "label": "cat"], image: image.bytes) }
        for id in ids { XCTAssertEqual(try dealer.ack(), Ack(id: id, status: .accepted)) }

        let store = try store(daemon)
        try waitUntil("the first job done", timeout: 60, daemon: daemon) { try store.job(ids[0])?.status == .done }
        daemon.kill()
        XCTAssertEqual(daemon.exitStatus, -SIGKILL)

        // Every acknowledged job survived kill -9.
        var before: [String: JobRecord] = [:]
        for id in ids { before[id] = try store.job(id) }
        XCTAssertEqual(Set(before.keys), Set(ids), "acked jobs missing after kill -9")
        let unfinished = ids.filter { [.accepted, .processing].contains(before[$0]?.status ?? .done) }
        XCTAssertGreaterThanOrEqual(unfinished.count, 3, "most jobs should be unfinished when killed: \(before.mapValues { $0.status.rawValue })")
        let publishedBefore = Set(results.all.compactMap { $0["id"] as? String })
        XCTAssertTrue(publishedBefore.isDisjoint(with: unfinished), "a result was published for an unfinished job")

        try daemon.start(samePorts: true)
        XCTAssertTrue(daemon.log.contains("the last run died with jobs in flight"), daemon.logTail)
        try waitUntil("every acked job done after the restart", timeout: 120, daemon: daemon) {
            try ids.allSatisfy { try store.job($0)?.status == .done }
        }
        XCTAssertEqual(results.wait(for: unfinished, timeout: 30), [], "results for resumed jobs\n\(daemon.logTail)")

        let runs = try store.runs(limit: 10)
        guard runs.count >= 2 else { return XCTFail("expected two runs, got \(runs.map(\.id))") }
        let (second, first) = (runs[0], runs[1])
        XCTAssertNil(first.stoppedAt, "the killed run never stopped cleanly")
        for id in ids {
            guard let row = try store.job(id), let old = before[id] else { continue }
            XCTAssertEqual(row.status, .done, id)
            XCTAssertEqual(row.runId, first.id, "\(id): accepted by the first run")
            XCTAssertEqual(row.params.seed, old.params.seed, "\(id): the seed fixed at acceptance is the one used")
            XCTAssertEqual(row.stagesRun, [.decode, .purify, .classify], id)
            XCTAssertNotNil(row.purifiedSha256, id)
            let published = results.results(for: id)
            XCTAssertLessThanOrEqual(published.count, 1, "\(id): published more than once")
            if unfinished.contains(id) {
                XCTAssertEqual(row.finishedRunId, second.id, "\(id): finished by the second run")
                // In flight at the kill (no crash journal after SIGKILL): a suspect, run alone once after
                // the restart (one attempt); still waiting in the queue: resumed normally (none).
                XCTAssertEqual(row.attempts, old.status == .processing ? 1 : 0, "\(id) was \(old.status)")
                XCTAssertFalse(row.suspect, id)
                XCTAssertEqual(published.count, 1, "\(id): its result is published after the restart")
                XCTAssertEqual(published.first?["status"] as? String, "done", id)
                XCTAssertEqual(published.first?["purified_sha256"] as? String, row.purifiedSha256, id)
                let seed = ((published.first?["params"] as? [String: Any])?["seed"] as? NSNumber)?.uint64Value
                XCTAssertEqual(seed, row.params.seed, id)
            } else {
                XCTAssertEqual(row.finishedRunId, first.id, id)
                XCTAssertEqual(row.attempts, 0, id)
                XCTAssertEqual(row.finishedAt, old.finishedAt, "\(id): a finished job is not run again")
            }
        }
        XCTAssertEqual(try store.counts(), ["done": ids.count])
        XCTAssertEqual(try store.integrityCheck(), "ok")
        stop(daemon)

        // The resumed job is reproducible from what was recorded: lgapctl replay gets the same image.
        if let resumed = unfinished.last {
            let r = try DaemonProcess.run(
                "lgapctl", arguments: ["replay", resumed, "--db", daemon.database, "--json", "--threads", "1"],
                directory: tmp, timeout: 120)
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            let replay = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            XCTAssertEqual(replay?["purified_hash_matches"] as? Bool, true, r.stdout)
        }
    }
}

/// A suspect that the daemon did not survive max_attempts times alone is failed, not run again.
final class MaxAttemptsTests: ServiceTestCase {
    func testSuspectOverMaxAttemptsIsRecordedFailed() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: Self.defaultPack))
        let dealer = try producer(daemon, .dealer)
        let image = try TestImages.png
        try dealer.send(header: ["id": "ok-job"], image: image)
        XCTAssertEqual(try dealer.ack(), Ack(id: "ok-job", status: .accepted))
        let reader = try store(daemon)
        try waitUntil("the first job done", timeout: 30, daemon: daemon) { try reader.job("ok-job")?.status == .done }
        stop(daemon)
        // Pretend a job took the daemon down three times while it ran alone.
        let writer = try SQLiteJobStore(path: daemon.database)
        var job = JobRecord(
            id: "crashy", node: DaemonProcess.defaultNode, receivedAt: Date(), runId: nil, mode: .router, peer: nil, input: image,
            inputSha256: SHA256.hex(image), inputFormat: .png, width: 32, height: 32, label: nil, meta: nil,
            requestedParams: nil, params: PurificationParameters(strength: 0.2, steps: 50, guidance: 2, seed: 7), cost: 1)
        job.attempts = 3
        job.suspect = true
        guard case .inserted = try writer.insertAccepted(job) else { return XCTFail("crashy not inserted") }
        try writer.close()
        try daemon.start(samePorts: true)
        try waitUntil("the crashy job recorded failed", timeout: 30, daemon: daemon) {
            try reader.job("crashy")?.status == .failed
        }
        XCTAssertEqual(try reader.job("crashy")?.reason, .tooManyAttempts)
        stop(daemon)
    }
}
