// Router mode against the real lgapd: acknowledgements (accepted, duplicate, rejected with a reason),
// every kind of bad input refused with its reason recorded while the daemon keeps serving, and the
// ack sent only once the job is committed to SQLite.
//
// Where bad input is caught: everything that can be judged from the frames, the header and the image
// header (sizes, format, dimensions, CMYK JPEG, 16-bit PPM) is refused at the door — ack "rejected",
// a refusal record, no result. Images whose header parses but whose pixel data is damaged (truncated or corrupted PNG/JPEG)
// cost a full decode to detect, which belongs to the decode stage, not the single ingest thread: they
// are acked "accepted", then finish as 'rejected' with reason corrupt_image, in SQLite and in their
// published result.
import Digest
import Foundation
import Messaging
import Provenance
import JobModel
import ServiceHarness
import XCTest

final class RouterModeTests: ServiceTestCase {
    struct BadInput {
        let name: String
        let frames: [[UInt8]]
        let reason: ReasonCode
        /// The id the refusal is recorded under when the header carried a valid one.
        var id: String? = nil
    }

    func badInputs() throws -> [BadInput] {
        let png = try TestImages.png
        let json = Producer.json
        func job(_ id: String, _ extra: [String: Any] = [:], image: [UInt8]? = nil) -> [[UInt8]] {
            [json(["id": id].merging(extra) { $1 }), image ?? png]
        }
        return [
            BadInput(name: "malformed JSON", frames: [Array(#"{"id": "mal-1", "format": "#.utf8), png], reason: .badHeader),
            BadInput(name: "header not an object", frames: [Array("[1, 2, 3]".utf8), png], reason: .badHeader),
            BadInput(name: "header a bare string", frames: [Array(#""hello""#.utf8), png], reason: .badHeader),
            BadInput(name: "header not UTF-8", frames: [[0xFF, 0xFE, 0x7B, 0x7D], png], reason: .badHeader),
            BadInput(name: "missing image frame", frames: [json(["id": "one-frame"])], reason: .missingFrame, id: "one-frame"),
            BadInput(name: "three frames", frames: job("three-frames") + [Array("extra".utf8)], reason: .extraFrames, id: "three-frames"),
            BadInput(name: "eight frames", frames: Array(repeating: png, count: 8), reason: .extraFrames),
            BadInput(name: "empty image frame", frames: job("empty-image", image: []), reason: .emptyImage, id: "empty-image"),
            BadInput(
                name: "unknown format bytes", frames: job("gif", image: Array("GIF89a\u{1}\u{0}\u{1}\u{0}".utf8)),
                reason: .unknownFormat, id: "gif"),
            BadInput(name: "unknown declared format", frames: job("fmt-gif", ["format": "gif"]), reason: .unknownFormat, id: "fmt-gif"),
            BadInput(
                name: "declared format mismatching the bytes", frames: job("fmt-mismatch", ["format": "jpeg"]),
                reason: .formatMismatch, id: "fmt-mismatch"),
            BadInput(
                name: "PNG header claiming 100000x100000",
                frames: job("bomb-made", image: TestImages.pngClaiming(width: 100_000, height: 100_000)), reason: .imageTooLarge, id: "bomb-made"),
            BadInput(
                name: "bomb.png fixture", frames: job("bomb-fixture", image: try TestImages.bytes("images/bomb.png")),
                reason: .imageTooLarge, id: "bomb-fixture"),
            BadInput(
                name: "PNG header claiming 4097x1", frames: job("too-wide", image: TestImages.pngClaiming(width: 4097, height: 1)),
                reason: .imageTooLarge, id: "too-wide"),
            BadInput(
                name: "PNG header claiming 0x0", frames: job("zero-size", image: TestImages.pngClaiming(width: 0, height: 0)),
                reason: .corruptImage, id: "zero-size"),
            BadInput(
                name: "JPEG header claiming 65000x65000", frames: job("jpeg-huge", image: try TestImages.jpegClaiming(width: 65000, height: 65000)),
                reason: .imageTooLarge, id: "jpeg-huge"),
            BadInput(
                name: "PPM header claiming 100000x100000", frames: job("ppm-huge", image: Array("P6\n100000 100000\n255\n".utf8) + [1, 2, 3]),
                reason: .imageTooLarge, id: "ppm-huge"),
            BadInput(
                name: "PPM with a malformed header", frames: job("ppm-bad", image: Array("P6\n12 x\n255\n".utf8)),
                reason: .corruptImage, id: "ppm-bad"),
            BadInput(
                name: "JPEG cut before its frame header", frames: job("jpeg-stub", image: try TestImages.jpegWithoutFrame),
                reason: .corruptImage, id: "jpeg-stub"),
            BadInput(
                name: "image frame over max_message_bytes", frames: job("big-frame", image: png + [UInt8](repeating: 0, count: 5000)),
                reason: .frameTooLarge, id: "big-frame"),
            BadInput(
                name: "header over max_header_bytes", frames: job("big-header", ["meta": ["pad": String(repeating: "x", count: 1500)]]),
                reason: .headerTooLarge),
            BadInput(
                name: "meta over max_meta_bytes", frames: job("big-meta", ["meta": ["pad": String(repeating: "x", count: 600)]]),
                reason: .badHeader, id: "big-meta"),
            BadInput(name: "invalid id", frames: job("bad id!"), reason: .invalidID),
            BadInput(name: "id too long", frames: job(String(repeating: "a", count: 129)), reason: .invalidID),
            BadInput(name: "id not a string", frames: [json(["id": 17]), png], reason: .badHeader),
            BadInput(name: "strength 7", frames: job("p-strength", ["params": ["strength": 7]]), reason: .badParams, id: "p-strength"),
            BadInput(name: "steps -1", frames: job("p-steps", ["params": ["steps": -1]]), reason: .badParams, id: "p-steps"),
            BadInput(name: "guidance a string", frames: job("p-guidance", ["params": ["guidance": "x"]]), reason: .badParams, id: "p-guidance"),
            BadInput(name: "unknown param", frames: job("p-unknown", ["params": ["temperature": 0.7]]), reason: .badParams, id: "p-unknown"),
            BadInput(name: "negative seed", frames: job("p-seed", ["params": ["seed": -1]]), reason: .badParams, id: "p-seed"),
            BadInput(name: "ensemble 0", frames: job("p-ensemble", ["params": ["ensemble": 0]]), reason: .badParams, id: "p-ensemble"),
            BadInput(name: "steps 2.5", frames: job("p-frac", ["params": ["steps": 2.5]]), reason: .badParams, id: "p-frac"),
            BadInput(name: "strength true", frames: job("p-bool", ["params": ["strength": true]]), reason: .badParams, id: "p-bool"),
            BadInput(name: "params not an object", frames: job("p-array", ["params": [1, 2]]), reason: .badHeader, id: "p-array"),
            BadInput(name: "unknown header field", frames: job("colour", ["colour": "blue"]), reason: .badHeader, id: "colour"),
            BadInput(name: "label a boolean", frames: job("label-bool", ["label": true]), reason: .badHeader, id: "label-bool")
        ]
    }

    /// A router-mode daemon with small frame limits, a live subscription to its results, a DEALER
    /// producer and a reader of its database.
    func startRouter() throws -> (DaemonProcess, ResultCollector, Producer, JobStore) {
        let daemon = try startDaemon(
            .init(
                mode: "router", pack: Self.defaultPack,
                sections: ["ingest": ["max_message_bytes": "4096", "max_header_bytes": "1024", "max_meta_bytes": "512"]]))
        let results = try collector(daemon)
        let dealer = try producer(daemon, .dealer)
        try subscribe(results, via: dealer)
        return (daemon, results, dealer, try store(daemon))
    }

    func testAcceptedDuplicateAndAssignedIDs() throws {
        let (daemon, results, dealer, store) = try startRouter()
        let png = try TestImages.png
        // A good job is accepted; the same id again is a duplicate, and is processed once.
        XCTAssertEqual(try dealer.submit(header: ["id": "dup-1"], image: png), Ack(id: "dup-1", status: .accepted))
        let again = try dealer.submit(header: ["id": "dup-1"], image: try TestImages.jpeg)
        XCTAssertEqual(again.status, .duplicate)
        XCTAssertEqual(again.id, "dup-1")
        XCTAssertEqual(again.reason, .duplicateID)
        // A job without an id gets one from the daemon.
        let anonymous = try dealer.submit(header: [:], image: png)
        XCTAssertEqual(anonymous.status, .accepted)
        XCTAssertTrue(JobHeader.isValidID(anonymous.id), anonymous.id)
        // REQ producers get their ack through the REQ envelope.
        let req = try producer(daemon, .req)
        XCTAssertEqual(try req.submit(header: ["id": "via-req"], image: try TestImages.bytes("images/rgb.ppm")), Ack(id: "via-req", status: .accepted))
        XCTAssertEqual(try req.submit(header: ["id": "dup-1"], image: png).status, .duplicate)

        let ids = ["dup-1", anonymous.id, "via-req"]
        XCTAssertEqual(results.wait(for: ids, timeout: 60), [], daemon.logTail)
        XCTAssertEqual(try dealer.submit(header: ["id": "last"], image: png).status, .accepted)
        XCTAssertEqual(results.wait(for: ["last"], timeout: 60), [])  // anything published for ids came before it
        for id in ids {
            XCTAssertEqual(results.results(for: id).count, 1, "\(id): exactly one result")
            XCTAssertEqual(results.results(for: id).first?["status"] as? String, "done", id)
            XCTAssertEqual(try store.job(id)?.status, .done, id)
            XCTAssertEqual(try store.job(id)?.attempts, 0, id)
            XCTAssertEqual(try store.job(id)?.mode, .router, id)
            XCTAssertNotNil(try store.job(id)?.peer, id)
        }
        XCTAssertEqual(try store.job("dup-1")?.inputSha256, SHA256.hex(png), "the duplicate did not replace the first job")
        stop(daemon)
    }

    func testBadInputIsRejectedWithItsReasonAndTheDaemonKeepsServing() throws {
        let (daemon, results, dealer, store) = try startRouter()
        let png = try TestImages.png
        var refused: [String] = []
        for bad in try badInputs() {
            let ack = try dealer.submit(bad.frames)
            XCTAssertEqual(ack.status, .rejected, "\(bad.name): \(ack)")
            XCTAssertEqual(ack.reason, bad.reason, "\(bad.name): \(ack.message ?? "")")
            XCTAssertFalse(ack.message?.isEmpty ?? true, "\(bad.name): a readable message")
            XCTAssertEqual(ack.id, bad.id ?? "", "\(bad.name): the ack echoes the header's id when it had a valid one")
            if let id = bad.id {
                let rows = try store.refusals(claimedID: id)
                XCTAssertEqual(rows.map(\.reason), [bad.reason], "\(bad.name): its refusal record")
                XCTAssertEqual(rows.first?.error, ack.message, bad.name)
                XCTAssertNil(try store.job(id), "\(bad.name): a refusal is not a job")
            }
            refused.append(ack.id)
        }
        XCTAssertEqual(try store.counts()["refused"], refused.count, "each refusal has its own record")
        XCTAssertEqual(try store.reasonCounts().values.reduce(0, +), refused.count)

        // A rejected id may be submitted again once fixed; and the daemon still serves.
        XCTAssertEqual(try dealer.submit(header: ["id": "p-strength", "params": ["strength": 0.5]], image: png).status, .accepted)
        XCTAssertEqual(try dealer.submit(header: ["id": "final-ok"], image: png), Ack(id: "final-ok", status: .accepted))
        XCTAssertEqual(results.wait(for: ["p-strength", "final-ok"], timeout: 60), [], daemon.logTail)
        XCTAssertEqual(results.results(for: "final-ok").first?["status"] as? String, "done")
        XCTAssertEqual(try store.job("p-strength")?.status, .done)
        XCTAssertEqual(try store.job("p-strength")?.params.strength, 0.5)
        // Refusals at the door publish no result (any would have come before final-ok's).
        for id in refused where id != "p-strength" { XCTAssertEqual(results.results(for: id).count, 0, id) }
        XCTAssertTrue(daemon.isRunning)
        stop(daemon)
    }

    /// Damaged pixel data behind a good header passes the door; the decode stage rejects the job.
    func testDamagedPixelDataIsRejectedByTheDecodeStage() throws {
        let (daemon, results, dealer, store) = try startRouter()
        let ppm = try TestImages.bytes("images/rgb.ppm")
        let damaged: [(String, [UInt8])] = [
            ("trunc-png", try TestImages.truncatedPNG), ("trunc-jpeg", try TestImages.truncatedJPEG),
            ("flipped-png", try TestImages.corruptPNG), ("trunc-ppm", Array(ppm.prefix(ppm.count / 2)))
        ]
        for (id, bytes) in damaged {
            XCTAssertEqual(try dealer.submit(header: ["id": id], image: bytes), Ack(id: id, status: .accepted))
        }
        XCTAssertEqual(try dealer.submit(header: ["id": "final-ok"], image: try TestImages.png).status, .accepted)
        XCTAssertEqual(results.wait(for: damaged.map(\.0) + ["final-ok"], timeout: 60), [], daemon.logTail)
        for (id, bytes) in damaged {
            let r = results.results(for: id)
            XCTAssertEqual(r.count, 1, id)
            XCTAssertEqual(r.first?["status"] as? String, "rejected", id)
            XCTAssertEqual(r.first?["reason"] as? String, "corrupt_image", id)
            XCTAssertFalse((r.first?["error"] as? String ?? "").isEmpty, id)
            XCTAssertNil(r.first?["label"], "\(id): never classified")
            let row = try store.job(id)
            XCTAssertEqual(row?.status, .rejected, id)
            XCTAssertEqual(row?.reason, .corruptImage, id)
            XCTAssertEqual(row?.error, r.first?["error"] as? String, id)
            XCTAssertEqual(row?.inputSha256, SHA256.hex(bytes), id)
            XCTAssertNil(row?.predLabel, id)
        }
        XCTAssertEqual(try store.job("final-ok")?.status, .done)
        stop(daemon)
    }

    /// A frame over max_message_bytes + 64 KiB: libzmq drops that peer's connection before buffering the
    /// frame. The peer reconnects, and resending its next job until acked (at-least-once, idempotent
    /// ids) gets it in; other producers never notice.
    func testFrameOverTheHardCapDropsOnlyThatConnection() throws {
        let (daemon, results, dealer, store) = try startRouter()
        let png = try TestImages.png
        let greedy = try producer(daemon, .dealer)
        try greedy.send(header: ["id": "huge-frame"], image: [UInt8](repeating: 7, count: 128 * 1024))
        try waitUntil("an ack for the job sent after the over-size frame", timeout: 60, daemon: daemon) {
            try greedy.send(header: ["id": "after-huge"], image: png)
            guard let reply = try greedy.socket.receive(timeoutMs: 1000), let ack = reply.frames.last.flatMap(Ack.decode) else { return false }
            XCTAssertEqual(ack.id, "after-huge")
            return ack.status == .accepted || ack.status == .duplicate
        }
        XCTAssertEqual(try dealer.submit(header: ["id": "other-peer"], image: png).status, .accepted)
        XCTAssertEqual(results.wait(for: ["after-huge", "other-peer"], timeout: 60), [])
        XCTAssertEqual(results.results(for: "after-huge").count, 1, "resent, processed once")
        XCTAssertNil(try store.job("huge-frame"), "a frame over the hard cap never reaches the store")
        stop(daemon)
    }

    /// When the ack for a job arrives, the job is already committed: a separate reader sees it.
    func testAckOnlyAfterCommit() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: Self.defaultPack))
        let dealer = try producer(daemon, .dealer)
        let store = try store(daemon)
        let png = try TestImages.png
        // A burst, so acks for early jobs race the commits of later ones.
        var ids: [String] = []
        for i in 0..<40 {
            let id = "commit-\(i)"
            ids.append(id)
            if i % 10 == 9 {
                try dealer.send(header: ["id": id, "params": ["steps": 0]], image: png)  // refused: bad_params
            } else {
                try dealer.send(header: ["id": id, "label": i], image: png)
            }
        }
        try dealer.send(header: ["id": "commit-0"], image: png)  // duplicate
        for id in ids + ["commit-0"] {
            let ack = try dealer.ack()
            XCTAssertEqual(ack.id, id, "acks come in submission order")
            let row = try store.job(ack.id)
            switch ack.status {
            case .accepted, .duplicate:
                XCTAssertNotNil(row, "\(id): acked \(ack.status) but not in SQLite yet")
                XCTAssertTrue([.accepted, .processing, .done].contains(row?.status), "\(id): \(row?.status.rawValue ?? "no row")")
                XCTAssertNotNil(row?.inputSha256, id)
            case .rejected:
                XCTAssertEqual(try store.refusals(claimedID: id).map(\.reason), [.badParams], "\(id): refusal recorded before its ack")
            }
        }
        try waitUntil("every accepted job done", timeout: 180, daemon: daemon) { (try store.counts())["done"] == 36 }
        XCTAssertEqual(try store.counts(), ["done": 36, "refused": 4])
        stop(daemon)
    }
}
