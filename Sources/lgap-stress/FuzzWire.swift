// lgap-stress fuzz-wire: sends many malformed or mutated messages to a running lgapd in router mode
// and checks that each gets an acknowledgement (every refusal carrying a reason), that the daemon
// stays up, that its memory stays bounded, and that it still processes a good job at the end.
import ArgumentParser
import Foundation
import JobModel
import LGAPFuzzSupport
import Messaging
import Provenance
import ServiceHarness

struct FuzzWire: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz-wire",
        abstract: "Malformed and mutated messages: every one answered with a reason, lgapd alive.")
    @OptionGroup var common: Common
    @Option(help: "Messages to send.") var messages = 100_000
    @Option(help: "Mutation seed.") var seed: UInt64 = 1

    func run() throws { try runFuzzWire(self) }
}

/// One malformed message: frames built from valid pieces by one of several mutation kinds.
func malformedMessage(_ g: inout SplitMix, images: [[UInt8]], index: Int) -> [[UInt8]] {
    let image = images[g.int(images.count)]
    let goodHeader = Array(#"{"id":"fz-\#(index)","format":"auto","params":{"strength":0.2}}"#.utf8)
    func mutate(_ b: [UInt8], flips: Int) -> [UInt8] {
        var out = b
        for _ in 0..<flips where !out.isEmpty { out[g.int(out.count)] ^= UInt8(truncatingIfNeeded: g.next() | 1) }
        return out
    }
    switch g.int(14) {
    case 0: return []  // nothing (only for DEALER: an empty message)
    case 1: return [goodHeader]  // missing image frame
    case 2: return [goodHeader, image, Array("extra".utf8)]  // extra frame
    case 3: return [g.bytes(g.int(200)), image]  // random header bytes
    case 4: return [mutate(goodHeader, flips: 1 + g.int(4)), image]  // flipped header bytes
    case 5: return [goodHeader, mutate(image, flips: 1 + g.int(20))]  // corrupted image data
    case 6: return [goodHeader, Array(image.prefix(g.int(image.count)))]  // truncated image
    case 7: return [goodHeader, g.bytes(g.int(4000))]  // random image bytes
    case 8:  // nonsense parameters
        let junk = [#""strength":7"#, #""steps":-1"#, #""guidance":"x""#, #""ensemble":1e9"#, #""seed":-5"#, #""eta":null"#, #""nope":1"#]
        return [Array(#"{"id":"fz-\#(index)","params":{\#(junk[g.int(junk.count)])}}"#.utf8), image]
    case 9:  // bad ids
        let ids = ["", "bad id!", String(repeating: "x", count: 200), "ü", "a/b", "\\u0000"]
        return [Array(#"{"id":"\#(ids[g.int(ids.count)])"}"#.utf8), image]
    case 10: return [Array(#"{"id":"fz-\#(index)","format":"gif"}"#.utf8), image]
    case 11: return [Array(String(repeating: "[", count: 2000).utf8), image]  // deep nesting
    case 12:  // PNG/JPEG header claiming a huge size
        var png = [UInt8](image)
        if png.starts(with: [0x89, 0x50]) && png.count > 24 { png[16] = 0x7F; png[20] = 0x7F } else { png = g.bytes(100) }
        return [goodHeader, png]
    default: return [Array(#"{"id":"fz-\#(index)","meta":\#(String(repeating: "{\"a\":", count: 50))1\#(String(repeating: "}", count: 50))}"#.utf8), image]
    }
}

func runFuzzWire(_ o: FuzzWire) throws {
    let images = try o.common.loadImages()
    var options = DaemonProcess.Options(mode: "router", pack: o.common.packFolder)
    options.sections = ["daemon": ["log_level": "\"error\""]]
    let daemon = try DaemonProcess(directory: try o.common.folder("fuzz-wire"), options: options)
    try daemon.start()
    let db = daemon.database, ingest = daemon.ingestEndpoint
    let context = try ZMQContext()
    let dealer = try ZMQSocket(context, .dealer)
    try dealer.connect(ingest)
    var g = SplitMix(state: o.seed)
    var statuses: [String: Int] = [:], reasons: [String: Int] = [:]
    var noReason = 0, unanswered = 0, maxRSS = 0
    let t0 = Date()
    // `messages` counts messages actually sent (a generated message with no frames is skipped).
    var i = 0, generated = 0
    while i < o.messages {
        let frames = malformedMessage(&g, images: images, index: generated)
        generated += 1
        if frames.isEmpty { continue }
        defer { i += 1 }
        try dealer.send(frames, timeoutMs: 5000)
        guard let reply = try dealer.receive(timeoutMs: 10_000), let ack = reply.frames.last.flatMap(Ack.decode) else {
            unanswered += 1
            if !daemon.isRunning { throw StressError("lgapd died at message \(i); see \(daemon.stderrPath)") }
            continue
        }
        statuses[ack.status.rawValue, default: 0] += 1
        if ack.status == .rejected {
            if let r = ack.reason { reasons[r.rawValue, default: 0] += 1 } else { noReason += 1 }
        }
        if i % 1000 == 0 { maxRSS = max(maxRSS, daemon.memoryKiB?.rss ?? 0) }
        if i % 20000 == 0 && i > 0 { print("\(i) messages, \(Int(Double(i) / Date().timeIntervalSince(t0))) msg/s, RSS \(maxRSS / 1024) MiB") }
    }
    // A good job still goes through.
    try dealer.send([Array(#"{"id":"fuzz-final-good"}"#.utf8), images[0]], timeoutMs: 5000)
    let finalAck = try dealer.receive(timeoutMs: 10_000).flatMap { $0.frames.last.flatMap(Ack.decode) }
    Thread.sleep(forTimeInterval: 2)
    let exit = daemon.terminate() ?? -1
    let store = try StoreLocation(db).openForQueries()
    let finalRow = try store.job("fuzz-final-good")
    let report: [String: Any] = [
        "messages": o.messages, "acks": statuses, "rejected_by_reason": reasons, "rejected_without_reason": noReason,
        "unanswered": unanswered, "max_rss_mib": maxRSS / 1024, "seconds": Int(Date().timeIntervalSince(t0)),
        "final_good_job": finalRow?.status.rawValue ?? "missing", "final_ack": finalAck?.status.rawValue ?? "none",
        "daemon_exit_status": Int(exit), "integrity_check": try store.integrityCheck()
    ]
    try printReport(report)
    if unanswered > 0 || noReason > 0 || finalRow?.status != .done || exit != 0 {
        throw StressError("fuzz-wire FAILED")
    }
    print("fuzz-wire passed: \(o.messages) messages, every one answered, every refusal with a reason, lgapd alive and exited 0")
}
