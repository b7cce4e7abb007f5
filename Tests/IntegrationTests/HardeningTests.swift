// lgapd tried as an attacker and as an unlucky operator would: in-range extremes, a second daemon on
// the same database, SIGHUP, a clean stop's database file, a peer that never reads its acks, a
// subscriber that never reads, control characters in ids, a DEALER's empty header frame, a full disk.
import Foundation
import JobModel
import Messaging
import Provenance
import ServiceHarness
import XCTest
#if canImport(Glibc)
    import Glibc
#endif

final class HardeningTests: ServiceTestCase {
    /// steps 1000 × strength 1 (both in range) used to put the first DDIM timestep past ᾱ's end: SIGILL.
    func testLongestScheduleInRangeRunsToTheEnd() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: try slowPack(steps: 10)))
        let dealer = try producer(daemon, .dealer)
        let ack = try dealer.submit(header: ["id": "extreme", "params": ["steps": 1000, "strength": 1.0, "ensemble": 1]], image: try TestImages.png)
        XCTAssertEqual(ack.status, .accepted)
        let store = try store(daemon)
        try waitUntil("the 1000-step job done", timeout: 120, daemon: daemon) { try store.job("extreme")?.status == .done }
        XCTAssertTrue(daemon.isRunning)
        stop(daemon)
    }

    func testSecondDaemonOnTheSameDatabaseIsRefused() throws {
        let first = try startDaemon(.init(mode: "pull", pack: try fastPack()))
        let second = try DaemonProcess(
            directory: tmp + "/second",
            options: {
                var o = DaemonProcess.Options(mode: "pull", pack: try fastPack())
                o.database = first.database
                return o
            }())
        XCTAssertThrowsError(try second.start(timeout: 30))
        XCTAssertEqual(second.exitStatus, 2, second.log)
        XCTAssertTrue(second.log.contains("pid \(first.pid)"), "the refusal names the daemon in the way:\n\(second.log)")
        XCTAssertTrue(first.isRunning)
        stop(first)
        // Once the first is gone (even by kill -9), the lock goes with it.
        try second.start()
        second.kill()
        try second.start()
        XCTAssertEqual(second.terminate(), 0)
    }

    func testSighupReloadsTheLogLevelAndKeepsServing() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: try fastPack()))
        let dealer = try producer(daemon, .dealer)
        XCTAssertEqual(try dealer.submit(header: ["id": "before"], image: try TestImages.png).status, .accepted)
        // The config now asks for debug; SIGHUP applies it without a restart.
        let text = try String(contentsOfFile: daemon.configPath, encoding: .utf8).replacingOccurrences(
            of: #"log_level = "info""#, with: #"log_level = "debug""#)
        try text.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        try waitUntil("the level change logged", timeout: 10, daemon: daemon) { daemon.log.contains("log level set") }
        XCTAssertEqual(try dealer.submit(header: ["id": "after"], image: try TestImages.png).status, .accepted)
        try waitUntil("a debug line", timeout: 30, daemon: daemon) { daemon.log.contains(" debug lgapd") }
        XCTAssertTrue(daemon.isRunning, "SIGHUP does not stop lgapd")
        stop(daemon)
    }

    func testCleanStopLeavesTheMainDatabaseFileComplete() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: try fastPack()))
        let dealer = try producer(daemon, .dealer)
        for i in 0..<30 { XCTAssertEqual(try dealer.submit(header: ["id": "wal-\(i)"], image: try TestImages.png).status, .accepted) }
        let store = try store(daemon)
        try waitUntil("all done", timeout: 60, daemon: daemon) { (try store.counts()["done"] ?? 0) == 30 }
        stop(daemon)
        let wal = (try? FileManager.default.attributesOfItem(atPath: daemon.database + "-wal")[.size] as? Int) ?? 0
        XCTAssertEqual(wal, 0, "the WAL was checkpointed into the main file")
        let copy = tmp + "/copied.sqlite"
        try FileManager.default.copyItem(atPath: daemon.database, toPath: copy)
        XCTAssertEqual(try SQLiteJobStore(readingAt: copy).counts()["done"], 30, "a copy of the main file alone has every job")
    }

    /// A ROUTER peer that never reads its acks costs only its own acks: another producer's ack latency
    /// beside it stays within 2× of its latency beside a peer that does read them, same traffic. (lgapd
    /// used to wait up to a second on each ack the mute peer had no room for, on the one ingest thread.)
    func testMuteRouterPeerDoesNotSlowOthers() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: try fastPack()))
        let png = try TestImages.png
        let store = try store(daemon)
        let context = self.context!
        let endpoint = daemon.ingestEndpoint
        /// A second peer floods 6,000 jobs, then trickles 20 a second while another producer's 200 ack
        /// latencies are measured (once what the flood queued is processed); its p95 (a blocked ack costs
        /// every ack behind it, so it moves the 95th percentile; a few scheduler hiccups on a shared
        /// 2-core machine move only the slowest one or two).
        func p95BesidePeer(reading: Bool, tag: String) throws -> Double {
            let stopPeer = DispatchSemaphore(value: 0), peerDone = DispatchSemaphore(value: 0)
            let flooding = Flag(true)
            Thread {
                defer { peerDone.signal() }
                guard let peer = try? ZMQSocket(context, .dealer) else { return }
                if !reading {
                    try? peer.setReceiveHighWaterMark(1)
                    try? peer.setReceiveBuffer(bytes: 4096)
                }
                try? peer.connect(endpoint)
                var n = 0
                while stopPeer.wait(timeout: .now() + (flooding.value ? 0 : 0.05)) == .timedOut {
                    try? peer.send([Producer.json(["id": "\(tag)-peer-\(n)"]), png], timeoutMs: 1000)
                    n += 1
                    if n == 6000 { flooding.value = false }
                    if reading { while (try? peer.receive(timeoutMs: 0)) ?? nil != nil {} }
                }
                peer.close()
            }.start()
            defer { stopPeer.signal(); peerDone.wait() }
            // Wait for the flood to be sent and processed: measure blocking, not load.
            var last = -1
            try waitUntil("the flood processed", timeout: 180, daemon: daemon) {
                let n = try store.counts()["done"] ?? 0
                defer { last = n }
                Thread.sleep(forTimeInterval: 1)
                return !flooding.value && last >= 0 && n - last < 40
            }
            let p = try producer(daemon, .dealer)
            let xs = try (0..<200).map { i -> Double in
                let t0 = Date()
                XCTAssertEqual(try p.submit(header: ["id": "\(tag)-\(i)"], image: png, timeout: 30).status, .accepted)
                return Date().timeIntervalSince(t0)
            }.sorted()
            print("\(tag): ack median \(Int(xs[100] * 1000)) ms, slowest \(xs.suffix(4).map { Int($0 * 1000) }) ms")
            return xs[Int(Double(xs.count - 1) * 0.95)]
        }
        let baseline = try p95BesidePeer(reading: true, tag: "reading")
        let undeliverableBefore = daemon.log.contains("ack not delivered")
        let withMute = try p95BesidePeer(reading: false, tag: "mute")
        XCTAssertFalse(undeliverableBefore)
        XCTAssertTrue(daemon.log.contains("ack not delivered"), "undeliverable acks are counted and logged\n\(daemon.logTail)")
        XCTAssertLessThanOrEqual(
            withMute, max(2 * baseline, 0.02),
            "ack p95 \(withMute * 1000) ms beside a mute peer vs \(baseline * 1000) ms beside a reading one")
        print("ack p95: \(baseline * 1000) ms beside a reading peer, \(withMute * 1000) ms beside a mute peer")
        stop(daemon)
    }

    /// A subscriber that never reads misses results (PUB semantics), but the daemon counts and logs
    /// them, and a subscriber that reads gets every result.
    func testSlowSubscriberDropsAreCountedAndOthersGetEverything() throws {
        let daemon = try startDaemon(.init(mode: "pull", pack: try fastPack()))
        let reader = try collector(daemon)
        let push = try producer(daemon, .push)
        try subscribe(reader, via: push)
        let lazy = try ZMQSocket(context, .sub)
        try lazy.setReceiveHighWaterMark(1)
        try lazy.setReceiveBuffer(bytes: 4096)
        try lazy.subscribe(topic: "result")
        try lazy.connect(daemon.resultsEndpoint)
        Thread.sleep(forTimeInterval: 0.5)
        // More results than the publisher queues for one subscriber (results high_water_mark, 1,000).
        let ids = (0..<3000).map { "sub-\($0)" }
        for id in ids { try push.send(header: ["id": id], image: try TestImages.png) }
        XCTAssertEqual(reader.wait(for: ids, timeout: 120), [], "the reading subscriber gets every result")
        try waitUntil("the drop warning", timeout: 10, daemon: daemon) { daemon.log.contains("slow subscriber missed results") }
        stop(daemon)
        XCTAssertTrue(daemon.log.contains("results_missed_by_slow_subscribers="), daemon.logTail)
        XCTAssertFalse(daemon.log.contains("results_missed_by_slow_subscribers=0 "), "drops counted\n\(daemon.logTail)")
        lazy.close()
    }

    /// Ids, labels and errors from peers are escaped in logs: a header cannot forge a log line.
    func testControlCharactersNeverReachTheLogRaw() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: try fastPack()))
        let dealer = try producer(daemon, .dealer)
        let forged = #"{"id":"x\n2026-01-01T00:00:00.000Z notice lgapd : [Service] job done FORGED\u001b[31m"}"#
        let ack = try dealer.submit([Array(forged.utf8), try TestImages.png])
        XCTAssertEqual(ack.reason, .invalidID)
        try waitUntil("the refusal logged", timeout: 10, daemon: daemon) { daemon.log.contains("refused at the door") }
        let forgedLine = daemon.log.split(separator: "\n").contains { $0.hasPrefix("2026-01-01") }
        XCTAssertFalse(forgedLine, "a forged line reached the log:\n\(daemon.logTail)")
        XCTAssertFalse(daemon.log.unicodeScalars.contains { $0.value == 0x1B }, "an ESC reached the log")
        stop(daemon)
    }

    /// log_format = "json": every line lgapd writes is one JSON object (time, level, logger, message and
    /// the metadata as keys), through start, a job, a forged refusal and a clean stop.
    func testJSONLogIsOneObjectPerLine() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: try fastPack(), sections: ["daemon": ["log_format": "\"json\""]]))
        let dealer = try producer(daemon, .dealer)
        XCTAssertEqual(try dealer.submit(header: ["id": "json-ok"], image: try TestImages.png).status, .accepted)
        let forged = #"{"id":"x\n{\"level\":\"critical\",\"message\":\"FORGED\"}\u001b[31m"}"#
        XCTAssertEqual(try dealer.submit([Array(forged.utf8), try TestImages.png]).reason, .invalidID)
        let store = try store(daemon)
        try waitUntil("the job done", timeout: 30, daemon: daemon) { try store.job("json-ok")?.status == .done }
        stop(daemon)
        let lines = daemon.log.split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 4, daemon.log)
        let timeFormat = ISO8601DateFormatter()
        timeFormat.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var levels: Set<String> = [], messages: [String] = [], refusals = 0
        for line in lines {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String] else {
                XCTFail("not a JSON object of strings: \(line)")
                continue
            }
            for key in ["time", "level", "logger", "message"] { XCTAssertNotNil(object[key], "\(key) missing: \(line)") }
            XCTAssertNotNil(timeFormat.date(from: object["time"] ?? ""), line.description)
            levels.insert(object["level"] ?? "")
            if object["message"] == "refused at the door" && object["reason"] == "invalid_id" { refusals += 1 }
            messages.append(object["message"] ?? "")
        }
        XCTAssertFalse(messages.contains("FORGED"), "a forged line reached the log")
        XCTAssertTrue(levels.isSuperset(of: ["info", "notice"]), "\(levels)")
        XCTAssertEqual(refusals, 1, "the refusal is one line with its reason as a key")
        XCTAssertTrue(messages.contains("ready") && messages.contains("stopped"), "\(messages)")
    }

    /// A DEALER whose header frame is empty is refused as a bad header, not misread as a REQ envelope.
    func testDealerEmptyHeaderFrameIsABadHeader() throws {
        let daemon = try startDaemon(.init(mode: "router", pack: try fastPack()))
        let dealer = try producer(daemon, .dealer)
        let ack = try dealer.submit([[], try TestImages.png])
        XCTAssertEqual(ack.status, .rejected)
        XCTAssertEqual(ack.reason, .badHeader, ack.message ?? "")
        stop(daemon)
    }

    /// A full disk: jobs acknowledged before it filled finish once space returns, without a restart;
    /// meanwhile new jobs are refused with store_unavailable under their own id and lgapd says it is not
    /// ready. Needs a small filesystem of its own (tmpfs; root).
    func testFullDiskThenSpaceReturns() throws {
        let mount = tmp + "/small"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        guard Self.shell("mount -t tmpfs -o size=4m tmpfs \(mount)") == 0 else {
            throw XCTSkip("cannot mount a tmpfs here (needs root)")
        }
        defer { _ = Self.shell("umount -l \(mount)") }
        var options = DaemonProcess.Options(mode: "router", pack: try fastPack())
        options.database = mount + "/db.sqlite"
        options.sections["store"] = ["durability": "\"full\""]
        let daemon = try startDaemon(options)
        // Leave a little room, then fill it with jobs until the store refuses.
        _ = Self.shell("dd if=/dev/zero of=\(mount)/filler bs=64k count=48 status=none")
        let dealer = try producer(daemon, .dealer)
        let png = try TestImages.png
        var accepted: [String] = []
        var refused: Ack?
        for i in 0..<3000 {
            let a = try dealer.submit(header: ["id": "fill-\(i)"], image: png, timeout: 30)
            if a.status == .accepted { accepted.append(a.id) } else { refused = a; break }
        }
        let r = try XCTUnwrap(refused, "the disk never filled")
        XCTAssertEqual(r.reason, .storeUnavailable, r.message ?? "")
        XCTAssertTrue(r.id.hasPrefix("fill-"), "the refusal echoes the request's id: \(r)")
        try waitUntil("not ready reported", timeout: 20, daemon: daemon) { daemon.log.contains("not ready") }
        // Space returns: everything acknowledged finishes, new work is taken, no restart.
        _ = Self.shell("rm -f \(mount)/filler")
        let store = try store(daemon)
        try waitUntil("every acknowledged job done", timeout: 120, daemon: daemon) {
            try accepted.allSatisfy { try store.job($0)?.status == .done }
        }
        try waitUntil("ready again", timeout: 30, daemon: daemon) { daemon.log.contains("ready again") || daemon.log.contains("store available again") }
        XCTAssertEqual(try dealer.submit(header: ["id": "after-space"], image: png).status, .accepted)
        XCTAssertEqual(daemon.launches, 1, "no restart")
        stop(daemon)
    }

    /// A producer beyond max_connections that reconnects over and over delivers nothing while the cap is
    /// full, and loses nothing: once a slot frees, everything it queued arrives. (Refused only after its
    /// handshake, each attempt could hand lgapd up to high_water_mark messages first: 8.7 GB in a
    /// 4-minute storm of maximal jobs while intake was paused.)
    func testProducerOverTheCapDeliversNothingUntilASlotFrees() throws {
        // Slow jobs and a backlog of one keep intake paused, when the refusal used to come late.
        var options = DaemonProcess.Options(mode: "pull", pack: try slowPack(steps: 150))
        options.sections["ingest"] = ["max_connections": "1", "max_backlog": "1"]
        let daemon = try startDaemon(options)
        let store = try store(daemon)
        let png = try TestImages.png
        let first = try producer(daemon, .push)
        let slow = (0..<12).map { "slow-\($0)" }
        for id in slow { try first.send(header: ["id": id], image: png) }
        try waitUntil("the first producer's job taken in", timeout: 60, daemon: daemon) { try store.job("slow-0") != nil }
        // The second producer reconnects every 20 ms, its jobs queued.
        let second = try producer(daemon, .push)
        let ids = (0..<50).map { "over-\($0)" }
        for id in ids { try second.send(header: ["id": id, "params": ["steps": 2]], image: png) }
        let t0 = Date()
        while Date().timeIntervalSince(t0) < 8 {
            Thread.sleep(forTimeInterval: 0.5)
            let through = try ids.filter { try store.job($0) != nil }
            XCTAssertEqual(through, [], "taken in over max_connections after \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
            if !through.isEmpty { break }
        }
        let refusals = daemon.log.components(separatedBy: "max_connections reached").count - 1
        XCTAssertGreaterThan(refusals, 10, "the second producer kept reconnecting")
        // A slot frees: everything the second producer queued arrives, once.
        first.socket.close()
        try waitUntil("every queued job done", timeout: 120, daemon: daemon) { try (slow + ids).allSatisfy { try store.job($0)?.status == .done } }
        XCTAssertEqual(daemon.launches, 1, "no restart")
        print("over-cap producer: \(refusals) connections refused in 8 s, none delivered; all \(ids.count) done after a slot freed")
        stop(daemon)
    }

    static func shell(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}

/// A flag shared with a thread.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var v: Bool
    init(_ v: Bool) { self.v = v }
    var value: Bool {
        get { lock.lock(); defer { lock.unlock() }; return v }
        set { lock.lock(); v = newValue; lock.unlock() }
    }
}
