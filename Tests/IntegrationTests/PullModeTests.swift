// Pull mode end to end against the real lgapd: images pushed in → one result each on the PUB socket →
// one 'done' row each in the provenance database, with the input's SHA-256, the stages that ran and the
// parameters and seed actually used; refused messages are recorded with their reason and the daemon
// keeps serving.
import Digest
import Foundation
import Messaging
import Models
import Provenance
import JobModel
import ServiceHarness
import XCTest

final class PullModeTests: ServiceTestCase {
    func testImagesInResultsOutRowsInHistory() throws {
        let daemon = try startDaemon(.init(mode: "pull", pack: Self.defaultPack))
        let results = try collector(daemon)
        let push = try producer(daemon, .push)
        let probes = try subscribe(results, via: push)

        // Every good fixture image, a ground-truth label on each, explicit params and seed on one.
        let images = try TestImages.good()
        var sent: [String: [UInt8]] = [:]
        for (i, image) in images.enumerated() {
            let id = "pull-\(i)"
            var header: [String: Any] = ["id": id, "format": "auto", "label": "cat", "meta": ["file": image.name]]
            if i == 3 { header["params"] = ["strength": 0.3, "steps": 20, "seed": 42] }
            try push.send(header: header, image: image.bytes)
            sent[id] = image.bytes
        }
        let missing = results.wait(for: sent.keys, timeout: 120)
        XCTAssertEqual(missing, [], "results that never arrived\n\(daemon.logTail)")

        // The results on the PUB socket.
        let classes = try packClasses()
        for (id, bytes) in sent {
            let got = results.results(for: id)
            XCTAssertEqual(got.count, 1, "\(id): one result per job")
            guard let r = got.first else { continue }
            XCTAssertEqual(r["status"] as? String, "done", "\(id): \(r)")
            XCTAssertEqual(r["input_sha256"] as? String, SHA256.hex(bytes), id)
            XCTAssertEqual(r["stages_run"] as? [String], Self.defaultPackStages, id)
            XCTAssertTrue(classes.contains(r["label"] as? String ?? ""), "\(id): label \(r["label"] ?? "nil") is not a class")
            let confidence = r["confidence"] as? Double ?? -1
            XCTAssertTrue(confidence > 0 && confidence <= 1, "\(id): confidence \(confidence)")
            XCTAssertEqual((r["top_k"] as? [Any])?.count, 5, id)
            XCTAssertNotNil((r["timings_ms"] as? [String: Double])?["classify"], id)
        }
        XCTAssertEqual(results.malformedMessages, [])

        // The rows in SQLite; parameters a job leaves unset are the pack's defaults (pack.json).
        let store = try store(daemon)
        let defaults = try PackManifest.load(folder: Self.defaultPack).purification
        for (id, bytes) in sent {
            guard let row = try store.job(id) else { XCTFail("\(id): no row"); continue }
            let r = results.results(for: id).first ?? [:]
            XCTAssertEqual(row.status, .done, id)
            XCTAssertEqual(row.mode, .pull, id)
            XCTAssertEqual(row.inputSha256, SHA256.hex(bytes), id)
            XCTAssertEqual(row.inputSize, bytes.count, id)
            XCTAssertEqual(row.input.map { [UInt8]($0) }, bytes, "\(id): stored input bytes")
            XCTAssertEqual(row.stagesRun?.map(\.rawValue), Self.defaultPackStages, id)
            XCTAssertEqual(row.label, "cat", "\(id): ground truth")
            XCTAssertEqual(row.predLabel, r["label"] as? String, id)
            XCTAssertEqual(row.attempts, 0, "\(id): attempts count only runs alone that the daemon did not survive")
            XCTAssertFalse(row.suspect, id)
            XCTAssertNil(row.stage, id)
            XCTAssertNotNil(row.finishedAt, id)
            XCTAssertGreaterThan(row.width, 0, id)
            XCTAssertNotNil(row.timings?["decode"], id)
            XCTAssertNotNil(row.timings?["classify"], id)
            // The seed recorded is the one the result reports (a fresh random one unless the job set it).
            let params = r["params"] as? [String: Any] ?? [:]
            XCTAssertEqual(row.params.seed, (params["seed"] as? NSNumber)?.uint64Value, "\(id): seed")
            if id == "pull-3" {
                XCTAssertEqual(row.params.strength, 0.3)
                XCTAssertEqual(row.params.steps, 20)
                XCTAssertEqual(row.params.seed, 42)
                XCTAssertEqual(row.params.guidance, defaults.guidance, "unset params fall back to the pack's defaults")
                XCTAssertEqual(row.requestedParams, JobParams(strength: 0.3, steps: 20, seed: 42))
            } else {
                XCTAssertEqual(row.params.strength, defaults.strength, "\(id): pack default strength")
                XCTAssertEqual(row.params.steps, defaults.steps, id)
                XCTAssertEqual(row.params.guidance, defaults.guidance, id)
                XCTAssertEqual(row.params.ensemble, defaults.ensemble ?? 1, "\(id): pack default ensemble")
                XCTAssertNil(row.requestedParams, id)
            }
            XCTAssertTrue(row.meta?.contains("\"file\"") ?? false, "\(id): meta kept")
        }
        let history = try store.history(.init(status: .done, limit: 1000)).compactMap { row -> JobRecord? in
            if case .job(let j) = row { return j } else { return nil }
        }
        XCTAssertEqual(Set(history.map(\.id)), Set(sent.keys).union(probes), "history lists every finished job once")
        XCTAssertEqual(history.count, sent.count + probes.count)
        XCTAssertEqual(try store.counts(), ["done": sent.count + probes.count])

        // Refusals in pull mode: no ack to send, so the reason is recorded in SQLite; the daemon keeps serving.
        let png = try TestImages.png
        try push.send(header: ["id": "pull-bad-format"], image: Array("GIF89a not really".utf8))
        try push.send(header: ["id": "pull-bad-params", "params": ["strength": 7]], image: png)
        try push.send([Producer.json(["id": "pull-one-frame"])])
        try push.send([Array("{not json".utf8), png])
        try push.send(header: ["id": "pull-truncated"], image: try TestImages.truncatedPNG)
        try push.send(header: ["id": "pull-after-bad"], image: png)
        XCTAssertEqual(results.wait(for: ["pull-truncated", "pull-after-bad"], timeout: 60), [], daemon.logTail)
        XCTAssertEqual(results.results(for: "pull-after-bad").first?["status"] as? String, "done")
        XCTAssertEqual(results.results(for: "pull-truncated").first?["reason"] as? String, "corrupt_image")
        try waitUntil("the refusals in the store", timeout: 10, daemon: daemon) {
            (try store.reasonCounts()) == ["unknown_format": 1, "bad_params": 1, "missing_frame": 1, "bad_header": 1, "corrupt_image": 1]
        }
        XCTAssertEqual(try store.refusals(claimedID: "pull-bad-format").map(\.reason), [.unknownFormat])
        XCTAssertEqual(try store.refusals(claimedID: "pull-bad-params").map(\.reason), [.badParams])
        XCTAssertNil(try store.job("pull-bad-params"), "a refusal is not a job")
        XCTAssertEqual(try store.job("pull-truncated")?.status, .rejected, "damage inside the pixel data is found by the decoder")
        XCTAssertTrue(daemon.isRunning)
        stop(daemon)
    }

    func packClasses() throws -> Set<String> {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.defaultPack + "/pack.json"))
        return Set((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["classes"] as? [String] ?? [])
    }
}
