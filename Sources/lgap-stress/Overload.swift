// lgap-stress overload: producers push far faster than the pipeline (pull mode) for a while; samples
// lgapd's RSS and the stages' queue depths, then checks that every message a producer managed to send
// was done (pull-mode producers block instead of losing jobs) and that memory stayed under the bound
// the configuration implies.
import ArgumentParser
import Foundation
import ImageIO
import Messaging
import Provenance
import ServiceHarness

struct Overload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Producers push far faster than the pipeline: nothing sent is lost, queues stay within capacity, RSS within bound.")
    @OptionGroup var common: Common
    @Option(help: "Seconds of overload.") var seconds: Double = 300
    @Option(help: "Producers.") var producers = 2

    func run() throws { try runOverload(self) }
}

func runOverload(_ o: Overload) throws {
    let images = try o.common.loadImages()
    var options = DaemonProcess.Options(mode: "pull", pack: o.common.packFolder)
    options.sections = ["daemon": ["log_level": "\"warning\""]]
    let daemon = try DaemonProcess(directory: try o.common.folder("overload"), options: options)
    let context = try ZMQContext()
    // The producers' unthrottled rate: the same pushes into a sink that drains as fast as it can, so
    // the report can say how much faster than the pipeline they offer work.
    let sinkPort = try DaemonProcess.freePorts().0
    let offeredRate = try measureProducerRate(context: context, endpoint: "tcp://127.0.0.1:\(sinkPort)", images: images)
    try daemon.start()
    let db = daemon.database, ingest = daemon.ingestEndpoint
    let baseRSS = daemon.memoryKiB?.rss ?? 0
    let sent = Shared(0)
    let stop = Shared(false)
    let done = DispatchGroup()
    // The producers' sockets stay open until the drain is over: a PUSH socket closed with messages
    // still queued in it drops them (linger 0), which would be the producer losing jobs, not lgapd.
    let sockets = Shared<[ZMQSocket]>([])
    for p in 0..<o.producers {
        done.enter()
        Thread {
            defer { done.leave() }
            guard let push = try? ZMQSocket(context, .push) else { return }
            sockets.with { $0.append(push) }
            try? push.setSendHighWaterMark(16)
            try? push.connect(ingest)
            var n = 0
            while !stop.get {
                let id = "ov-\(p)-\(n)"
                do {
                    // Blocking send with a timeout: when lgapd is full this blocks (backpressure).
                    try push.send([Array(#"{"id":"\#(id)"}"#.utf8), images[n % images.count]], timeoutMs: 500)
                    n += 1
                    sent.with { $0 += 1 }
                } catch {}
            }
        }.start()
    }
    var maxRSS = 0, warmRSS = 0
    var samples: [(Double, Int, Int)] = []
    let t0 = Date()
    while Date().timeIntervalSince(t0) < o.seconds {
        Thread.sleep(forTimeInterval: 1)
        let rss = daemon.memoryKiB?.rss ?? 0
        maxRSS = max(maxRSS, rss)
        // The models' working buffers at full micro-batches, thread stacks, allocator arenas and SQLite's
        // cache are in place after a minute of full load.
        if warmRSS == 0 && Date().timeIntervalSince(t0) >= 60 { warmRSS = rss }
        samples.append((Date().timeIntervalSince(t0), rss, sent.get))
    }
    stop.with { $0 = true }
    done.wait()
    let totalSent = sent.get
    // Drain: every sent message must end up done (sent messages sit in ZeroMQ or SQLite, never dropped).
    let deadline = Date(timeIntervalSinceNow: 1800)
    var counts: [String: Int] = [:]
    while Date() < deadline {
        counts = try StoreLocation(db).openForQueries().counts()
        if (counts["done"] ?? 0) + (counts["rejected"] ?? 0) + (counts["failed"] ?? 0) >= totalSent { break }
        Thread.sleep(forTimeInterval: 1)
    }
    let drained = Date()
    for socket in sockets.get { socket.close() }
    let exit = daemon.terminate() ?? -1
    let store = try StoreLocation(db).openForQueries()
    let stats = try store.stageStats()
    let overCapacity = stats.filter { $0.highWater > $0.capacity }
    // The memory bound: warm RSS + every slot that can hold a job at once (each queue's capacity, one
    // micro-batch of up to 8 in each stage, the ingest socket's receive buffer, [ingest] high_water_mark = 8 by default) × the largest
    // item (its bytes + decoded RGB + float32 tensor) + 64 MiB for SQLite's page cache, WAL and
    // allocator slack.
    let largest =
        images.map { bytes -> Int in
            let pixels = (try? ImageCodec.dimensions(bytes)).map { $0.width * $0.height } ?? 0
            return bytes.count + pixels * 3 + pixels * 3 * 4
        }.max() ?? 0
    let slots = stats.reduce(0) { $0 + $1.capacity + 8 } + 64
    let boundKiB = warmRSS + slots * largest / 1024 + 64 * 1024
    let elapsed = samples.last?.0 ?? 1
    let report: [String: Any] = [
        "seconds": Int(elapsed), "producers": o.producers, "sent": totalSent, "send_rate_per_s": Double(totalSent) / elapsed,
        "producer_unthrottled_rate_per_s": offeredRate * Double(o.producers),
        "pipeline_rate_per_s": Double(counts["done"] ?? 0) / drained.timeIntervalSince(t0),
        "overload_factor": offeredRate * Double(o.producers) / max(Double(counts["done"] ?? 0) / drained.timeIntervalSince(t0), 1e-9),
        "jobs": counts, "base_rss_mib": baseRSS / 1024, "warm_rss_mib": warmRSS / 1024, "max_rss_mib": maxRSS / 1024,
        "rss_bound_mib": boundKiB / 1024,
        "rss_mib_every_30s": stride(from: 29, to: samples.count, by: 30).map { samples[$0].1 / 1024 }, "job_slots": slots, "largest_item_bytes": largest,
        "queues": stats.map { ["stage": $0.stage, "capacity": $0.capacity, "high_water": $0.highWater] },
        "daemon_exit_status": Int(exit)
    ]
    try printReport(report)
    let lost = totalSent - (counts["done"] ?? 0) - (counts["rejected"] ?? 0) - (counts["failed"] ?? 0)
    if lost != 0 || !overCapacity.isEmpty || maxRSS > boundKiB {
        throw StressError(
            "overload FAILED: \(lost) lost, queues over capacity: \(overCapacity.map(\.stage)), max RSS \(maxRSS / 1024) MiB vs bound \(boundKiB / 1024) MiB")
    }
    print("overload passed: \(totalSent) sent in \(Int(elapsed)) s, none lost, queues within capacity, max RSS \(maxRSS / 1024) MiB")
}

/// Messages per second one producer pushes when nothing holds it back (a local sink drains them).
func measureProducerRate(context: ZMQContext, endpoint: String, images: [[UInt8]], seconds: Double = 2) throws -> Double {
    let sink = try ZMQSocket(context, .pull)
    try sink.bind(endpoint)
    let stop = Shared(false)
    let drainer = Thread {
        while !stop.get { _ = try? sink.receive(timeoutMs: 100) }
    }
    drainer.start()
    let push = try ZMQSocket(context, .push)
    try push.setSendHighWaterMark(16)
    try push.connect(endpoint)
    var n = 0
    let t0 = Date()
    while Date().timeIntervalSince(t0) < seconds {
        try push.send([Array(#"{"id":"calibrate-\#(n)"}"#.utf8), images[n % images.count]], timeoutMs: 500)
        n += 1
    }
    let rate = Double(n) / Date().timeIntervalSince(t0)
    stop.with { $0 = true }
    Thread.sleep(forTimeInterval: 0.2)
    push.close()
    sink.close()
    return rate
}
