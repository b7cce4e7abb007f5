// The adversaries of the hardening work, as long runs with a report: poison jobs among innocents, a
// restart storm in pull mode, a mute ROUTER peer, many producers of maximal jobs, a full disk.
import ArgumentParser
import Foundation
import ImageIO
import JobModel
import Messaging
import Provenance
import ServiceHarness

/// Percentile of seconds, in milliseconds.
func percentileMs(_ xs: [Double], _ p: Double) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    return 1000 * s[min(s.count - 1, Int(Double(s.count - 1) * p))]
}

/// Waits until `condition` holds (polling), or throws after `timeout`.
func waitFor(_ what: String, timeout: TimeInterval, _ condition: () throws -> Bool) throws {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
        if try condition() { return }
        Thread.sleep(forTimeInterval: 0.1)
    }
    throw StressError("timed out after \(Int(timeout)) s waiting for \(what)")
}

struct Poison: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Poison jobs (LGAP_TEST_CRASH) among innocents, restarted like systemd does: only the poison fails.")
    @OptionGroup var common: Common
    @Option(help: "Jobs.") var jobs = 200
    @Option(help: "Poison jobs among them.") var poison = 10
    @Option(help: "Stage the poison kills.") var stage = "purify"

    func run() throws {
        var options = DaemonProcess.Options(mode: "router", pack: common.packFolder)
        options.environment = ["LGAP_TEST_CRASH": "\(stage):poison-"]
        options.sections = ["daemon": ["log_level": "\"warning\""]]
        let daemon = try DaemonProcess(directory: try common.folder("poison"), options: options)
        try daemon.start()
        let images = try common.loadImages()
        let context = try ZMQContext()
        let dealer = try Producer(context: context, .dealer, endpoint: daemon.ingestEndpoint)
        let poisonAt = Set(stride(from: jobs / (poison + 1), to: jobs, by: max(1, jobs / (poison + 1))).prefix(poison))
        let ids = (0..<jobs).map { poisonAt.contains($0) ? "poison-\($0)" : "innocent-\($0)" }
        var restarts = 0
        // A poison job crashes lgapd while later jobs are still being submitted: like a producer under
        // systemd's Restart=, resend whatever got no ack once lgapd is back (at-least-once; a job that
        // was committed before the crash answers duplicate). Acks carry the id: stale ones are skipped.
        for (i, id) in ids.enumerated() {
            while true {
                if !daemon.isRunning { restarts += 1; try daemon.start(samePorts: true) }
                try dealer.send(header: ["id": id], image: images[i % images.count])
                var ack = try? dealer.ack(timeout: 10)
                while let a = ack, a.id != id { ack = try? dealer.ack(timeout: 10) }
                guard let a = ack else { continue }
                guard a.status == .accepted || a.status == .duplicate else { throw StressError("\(id) refused: \(a)") }
                break
            }
        }
        let store = try StoreLocation(daemon.database).openForQueries()
        let t0 = Date()
        try waitFor("every job final", timeout: 3600) {
            if !daemon.isRunning { restarts += 1; try daemon.start(samePorts: true) }
            return try ids.allSatisfy { try store.job($0)?.status.isFinal == true }
        }
        var innocentFailed = 0, poisonFailed = 0, lost = 0
        for id in ids {
            guard let j = try store.job(id) else { lost += 1; continue }
            if id.hasPrefix("poison") { if j.reason == .tooManyAttempts { poisonFailed += 1 } } else if j.status != .done { innocentFailed += 1 }
        }
        _ = daemon.terminate()
        try printReport([
            "jobs": jobs, "poison": poisonAt.count, "poison_failed": poisonFailed, "innocent_not_done": innocentFailed,
            "lost": lost, "restarts": restarts, "seconds": Int(Date().timeIntervalSince(t0))
        ])
        if innocentFailed > 0 || lost > 0 || poisonFailed != poisonAt.count { throw StressError("poison FAILED") }
        print("poison passed: \(poisonAt.count) poison jobs failed alone over \(restarts) restarts; \(jobs - poisonAt.count) innocents done")
    }
}

struct RestartStorm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart-storm",
        abstract: "Pull mode: a paced PUSH stream across SIGTERM restarts; every job sent ends done exactly once.")
    @OptionGroup var common: Common
    @Option(help: "Jobs.") var jobs = 2000
    @Option(help: "Restarts.") var restarts = 20
    @Option(help: "Producer pace, jobs per second.") var rate: Double = 100

    func run() throws {
        var options = DaemonProcess.Options(mode: "pull", pack: common.packFolder)
        options.sections = ["daemon": ["log_level": "\"warning\""]]
        let daemon = try DaemonProcess(directory: try common.folder("restart-storm"), options: options)
        try daemon.start()
        let images = try common.loadImages()
        let context = try ZMQContext()
        let endpoint = daemon.ingestEndpoint
        let sent = Shared(0), release = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let (n, pace) = (jobs, rate)
        Thread {
            defer { done.signal() }
            guard let push = try? ZMQSocket(context, .push) else { return }
            try? push.setReconnectInterval(milliseconds: 20)
            try? push.connect(endpoint)
            let t0 = Date()
            for i in 0..<n {
                let due = t0.addingTimeInterval(Double(i) / pace)
                if due > Date() { Thread.sleep(until: due) }
                try? push.send([Producer.json(["id": "storm-\(i)"]), images[i % images.count]])
                sent.with { $0 += 1 }
            }
            _ = release.wait(timeout: .now() + 3600)
            push.close()
        }.start()
        var stops = 0, badExits = 0
        while stops < restarts && sent.get < jobs {
            Thread.sleep(forTimeInterval: Double.random(in: 0.3...1.0))
            if daemon.terminate(timeout: 60) != 0 { badExits += 1 }
            stops += 1
            try daemon.start(samePorts: true)
        }
        let store = try StoreLocation(daemon.database).openForQueries()
        try waitFor("every job done", timeout: 1800) { try sent.get == jobs && (store.counts()["done"] ?? 0) >= jobs }
        let counts = try store.counts()
        let missing = try (0..<jobs).filter { try store.job("storm-\($0)")?.status != .done }.count
        _ = daemon.terminate()
        release.signal()
        done.wait()
        try printReport(["jobs_sent": jobs, "sigterm_restarts": stops, "non_zero_exits": badExits, "jobs": counts, "not_done": missing])
        if missing > 0 || counts != ["done": jobs] || badExits > 0 { throw StressError("restart-storm FAILED") }
        print("restart-storm passed: \(jobs) jobs across \(stops) SIGTERM restarts, each done exactly once")
    }
}

struct MutePeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mute-peer",
        abstract: "Router mode: another producer's ack latency beside a peer that never reads its acks.")
    @OptionGroup var common: Common
    @Option(help: "Acks measured per phase.") var acks = 1000

    func run() throws {
        var options = DaemonProcess.Options(mode: "router", pack: common.packFolder)
        options.sections = ["daemon": ["log_level": "\"warning\""]]
        let daemon = try DaemonProcess(directory: try common.folder("mute-peer"), options: options)
        try daemon.start()
        let images = try common.loadImages()
        let context = try ZMQContext()
        let store = try StoreLocation(daemon.database).openForQueries()
        func latencies(prefix: String) throws -> [Double] {
            let p = try Producer(context: context, .dealer, endpoint: daemon.ingestEndpoint)
            return try (0..<acks).map { i in
                let t0 = Date()
                _ = try p.submit(header: ["id": "\(prefix)-\(i)"], image: images[i % images.count], timeout: 60)
                return Date().timeIntervalSince(t0)
            }
        }
        let alone = try latencies(prefix: "alone")
        let mute = try ZMQSocket(context, .dealer)
        try mute.setReceiveHighWaterMark(1)
        try mute.setReceiveBuffer(bytes: 4096)
        try mute.connect(daemon.ingestEndpoint)
        var m = 0
        while !daemon.log.contains("ack not delivered") && m < 50_000 {
            try? mute.send([Producer.json(["id": "mute-\(m)"]), images[m % images.count]], timeoutMs: 1000)
            m += 1
        }
        var last = -1
        try waitFor("the flood processed", timeout: 600) {
            let n = try store.counts()["done"] ?? 0
            defer { last = n }
            Thread.sleep(forTimeInterval: 1)
            return last == n
        }
        let stop = Shared(false)
        let start = m
        let trickle = Thread {
            var k = start
            while !stop.get {
                try? mute.send([Producer.json(["id": "mute-\(k)"]), images[k % images.count]], timeoutMs: 100)
                k += 1
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        trickle.start()
        let beside = try latencies(prefix: "beside")
        stop.with { $0 = true }
        Thread.sleep(forTimeInterval: 0.2)
        _ = daemon.terminate()
        let p99a = percentileMs(alone, 0.99), p99b = percentileMs(beside, 0.99)
        try printReport([
            "ack_p50_ms_alone": percentileMs(alone, 0.5), "ack_p99_ms_alone": p99a, "ack_p50_ms_beside_mute": percentileMs(beside, 0.5),
            "ack_p99_ms_beside_mute": p99b, "mute_jobs_sent_in_flood": m
        ])
        if p99b > max(2 * p99a, 20) { throw StressError("mute-peer FAILED: p99 \(p99b) ms vs \(p99a) ms") }
        print("mute-peer passed: ack p99 \(String(format: "%.1f", p99b)) ms beside a mute peer, \(String(format: "%.1f", p99a)) ms alone")
    }
}

struct ManyProducers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "many-producers",
        abstract: "Producers of maximal jobs (4096² images, ensemble 16, near-limit frames) for minutes: RSS stays within the configured bound.")
    @OptionGroup var common: Common
    @Option(help: "Producers (also [ingest] max_connections).") var producers = 8
    @Option(help: "More producers beyond max_connections: refused, they reconnect all run long (libzmq's 100 ms).")
    var overCap = 0
    @Option(help: "Seconds.") var seconds: Double = 300
    @Option(name: .customLong("max-inflight-mib"), help: "[limits] max_inflight_bytes in MiB.") var inflightMiB = 1024

    func run() throws {
        let dir = try common.folder("many-producers")
        var options = DaemonProcess.Options(mode: "pull", pack: common.packFolder)
        let maxMessage = 8 * 1024 * 1024, hwm = 16
        options.sections = [
            "daemon": ["log_level": "\"warning\"", "threads": "2"],
            "ingest": ["max_connections": "\(producers)", "high_water_mark": "\(hwm)", "max_message_bytes": "\(maxMessage)"],
            "limits": ["max_inflight_bytes": "\(inflightMiB << 20)"]
        ]
        let daemon = try DaemonProcess(directory: dir, options: options)
        try daemon.start()
        let kinds = try MaximalJobs()
        let context = try ZMQContext()
        // Warm: one job of each kind through the models, so their working memory is counted once.
        let warm = try Producer(context: context, .push, endpoint: daemon.ingestEndpoint)
        let store = try StoreLocation(daemon.database).openForQueries()
        for (i, job) in kinds.all.enumerated() { try warm.send(header: job.header(id: "warm-\(i)"), image: job.image) }
        try waitFor("the warm-up jobs final", timeout: 600) { try (0..<kinds.all.count).allSatisfy { try store.job("warm-\($0)")?.status.isFinal == true } }
        // The warm-up connection goes before the producers come: with it open, one of them would be
        // one connection too many and be refused (and reconnect) all run long.
        warm.socket.close()
        let warmKiB = daemon.memoryKiB?.peak ?? 0
        let boundKiB = warmKiB + inflightMiB * 1024 + producers * (hwm + 1) * (maxMessage + 65536) / 1024 + 8 * 1024 + 64 * 1024
        let stop = Shared(false), sent = Shared(0), sentOverCap = Shared(0)
        let endpoint = daemon.ingestEndpoint
        let group = DispatchGroup()
        for p in 0..<(producers + overCap) {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let push = try? ZMQSocket(context, .push) else { return }
                // The producers' own queues stay small: at libzmq's default (1,000 messages a pipe) eight
                // producers of 7.7 MB images queue 20 GB in this process (it was OOM-killed), not in lgapd.
                try? push.setSendHighWaterMark(4)
                try? push.connect(endpoint)
                var n = 0
                while !stop.get {
                    let job = kinds.all[(p + n) % kinds.all.count]
                    if (try? push.send([Producer.json(job.header(id: "p\(p)-\(n)")), job.image], timeoutMs: 500)) != nil {
                        n += 1
                        (p < producers ? sent : sentOverCap).with { $0 += 1 }
                    }
                }
                Thread.sleep(forTimeInterval: 3600)  // keep queued messages until the process ends
            }.start()
        }
        var maxRSS = 0, samples: [Int] = []
        let t0 = Date()
        while Date().timeIntervalSince(t0) < seconds {
            Thread.sleep(forTimeInterval: 1)
            let rss = daemon.memoryKiB?.rss ?? 0
            maxRSS = max(maxRSS, rss)
            samples.append(rss)
        }
        stop.with { $0 = true }
        let peak = daemon.memoryKiB?.peak ?? 0
        let counts = try store.counts()
        let log = daemon.log
        let refusals = log.components(separatedBy: "max_connections reached").count - 1
        _ = daemon.terminate(timeout: 120)
        try printReport([
            "producers": producers, "over_cap_producers": overCap, "seconds": Int(seconds), "sent": sent.get,
            "sent_over_cap": sentOverCap.get, "connections_refused": refusals, "jobs": counts,
            "warm_peak_mib": warmKiB / 1024, "max_rss_mib": maxRSS / 1024, "peak_rss_mib": peak / 1024,
            "bound_mib": boundKiB / 1024, "bound": "warm + max_inflight_bytes + producers × (high_water_mark + 1) × (max_message_bytes + 64 KiB) + 72 MiB",
            "rss_mib_every_30s": stride(from: 29, to: samples.count, by: 30).map { samples[$0] / 1024 }
        ])
        if peak > boundKiB { throw StressError("many-producers FAILED: peak RSS \(peak / 1024) MiB over the bound \(boundKiB / 1024) MiB") }
        print("many-producers passed: peak RSS \(peak / 1024) MiB within the bound \(boundKiB / 1024) MiB")
    }
}

/// The costliest jobs the default limits admit: a flat 4096×4096 PNG at the pack's defaults, a small
/// image at ensemble 16 and strength 1, and a near-8-MiB noise PNG.
struct MaximalJobs: @unchecked Sendable {
    struct Job {
        let image: [UInt8]
        let params: [String: Any]
        func header(id: String) -> [String: Any] { params.isEmpty ? ["id": id] : ["id": id, "params": params] }
    }
    let all: [Job]

    init() throws {
        // The maximal inputs, made here: a flat 4096² PNG (tiny file, 16.8 M pixels to decode) and a
        // 1600² PNG of noise (a large file that does not compress).
        let side = 4096, noiseSide = 1600
        var pixels = [UInt8](repeating: 0, count: side * side * 3)
        for i in stride(from: 0, to: pixels.count, by: 3) { (pixels[i], pixels[i + 1], pixels[i + 2]) = (120, 130, 140) }
        let flat = try ImageCodec.encodePNG(RGBImage(width: side, height: side, pixels: pixels))
        var rng = SplitMix64(seed: 0)
        let noise = try ImageCodec.encodePNG(
            RGBImage(width: noiseSide, height: noiseSide, pixels: (0..<noiseSide * noiseSide * 3).map { _ in UInt8(truncatingIfNeeded: rng.next()) }))
        let small = try TestImages.png
        all = [
            Job(image: flat, params: [:]),
            Job(image: small, params: ["ensemble": 16, "strength": 1.0, "steps": 50]),
            Job(image: noise, params: [:])
        ]
    }
}

struct DiskFull: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disk-full",
        abstract: "The store on a small tmpfs that fills: refusals with ids, not-ready, then every acked job done once space returns.")
    @OptionGroup var common: Common
    @Option(help: "tmpfs size in MiB.") var sizeMiB = 8

    func run() throws {
        let dir = try common.folder("disk-full"), mount = dir + "/small"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        _ = try DaemonProcess.runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeMiB)m", "tmpfs", mount])
        defer { _ = try? DaemonProcess.runTool("/bin/umount", ["-l", mount]) }
        var options = DaemonProcess.Options(mode: "router", pack: common.packFolder)
        options.database = mount + "/db.sqlite"
        let daemon = try DaemonProcess(directory: dir, options: options)
        try daemon.start()
        let images = try common.loadImages()
        let context = try ZMQContext()
        let dealer = try Producer(context: context, .dealer, endpoint: daemon.ingestEndpoint)
        var accepted: [String] = [], refusals = 0, refusalsWithID = 0, i = 0
        let t0 = Date()
        while refusals < 20 && i < 100_000 {
            let a = try dealer.submit(header: ["id": "fill-\(i)"], image: images[i % images.count], timeout: 60)
            if a.status == .accepted {
                accepted.append(a.id)
            } else if a.reason == .storeUnavailable {
                refusals += 1
                if a.id == "fill-\(i)" { refusalsWithID += 1 }
            }
            i += 1
        }
        let filledAfter = Date().timeIntervalSince(t0)
        let notReady = daemon.log.contains("not ready")
        // Space returns: move the database's neighbours out of the way by growing the mount.
        _ = try DaemonProcess.runTool("/bin/mount", ["-o", "remount,size=\(sizeMiB * 8)m", mount])
        let store = try StoreLocation(daemon.database).openForQueries()
        try waitFor("every acknowledged job done", timeout: 600) { try accepted.allSatisfy { try store.job($0)?.status == .done } }
        let after = try dealer.submit(header: ["id": "after-space"], image: images[0], timeout: 60)
        _ = daemon.terminate()
        try printReport([
            "accepted_before_full": accepted.count, "seconds_to_fill": Int(filledAfter), "refusals_store_unavailable": refusals,
            "refusals_echoing_the_id": refusalsWithID, "reported_not_ready": notReady, "all_accepted_done": true,
            "accepted_after_space": after.status.rawValue, "restarts": daemon.launches - 1
        ])
        if refusalsWithID != refusals || !notReady || after.status != .accepted || daemon.launches != 1 { throw StressError("disk-full FAILED") }
        print("disk-full passed: \(accepted.count) acked jobs all done after space returned, \(refusals) refusals with their ids, no restart")
    }
}

/// A small seeded generator (SplitMix64), so the noise image is the same every run.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
