// ZeroMQ CURVE with an allow-list: a producer whose public key is listed can submit and gets its
// ack; an unlisted producer's handshake is refused (no ack, no job) and lgapd logs the refusal.
import Foundation
import Messaging
import JobModel
import ServiceHarness
import XCTest

final class CurveTests: ServiceTestCase {
    func testOnlyListedProducersCanSubmit() throws {
        guard CurveKeyPair.available else { throw XCTSkip("libzmq without CURVE") }
        let server = try CurveKeyPair.generate(), listed = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()
        let keyFile = tmp + "/server.key", allowFile = tmp + "/allowed"
        try "public-key: \(server.publicKey)\nsecret-key: \(server.secretKey)\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        try "# producers allowed to submit\n\(listed.publicKey)\n".write(toFile: allowFile, atomically: true, encoding: .utf8)
        var options = DaemonProcess.Options(mode: "router", pack: Self.defaultPack)
        options.configFile = tmp + "/curve.toml"
        try """
        [daemon]
        log_level = "info"
        threads = 1
        [security]
        curve = true
        server_secret_key_file = "\(keyFile)"
        allowed_clients_file = "\(allowFile)"
        """.write(toFile: options.configFile!, atomically: true, encoding: .utf8)
        let daemon = try startDaemon(options)
        let image = try TestImages.png

        // Listed: accepted.
        let good = try ZMQSocket(context, .dealer)
        try good.setCurveClient(serverKey: server.publicKey, keys: listed)
        try good.connect(daemon.ingestEndpoint)
        try good.send([Array(#"{"id":"curve-ok"}"#.utf8), image], timeoutMs: 5000)
        let ack = try good.receive(timeoutMs: 10_000).flatMap { $0.frames.last.flatMap(Ack.decode) }
        XCTAssertEqual(ack, Ack(id: "curve-ok", status: .accepted), daemon.logTail)

        // Unlisted: the handshake fails, so nothing is delivered and nothing is acknowledged.
        let bad = try ZMQSocket(context, .dealer)
        try bad.setCurveClient(serverKey: server.publicKey, keys: stranger)
        try bad.connect(daemon.ingestEndpoint)
        try? bad.send([Array(#"{"id":"curve-stranger"}"#.utf8), image], timeoutMs: 2000)
        XCTAssertNil(try bad.receive(timeoutMs: 3000), "an unlisted producer got a reply")
        // No key at all (plain socket): refused by the CURVE server too.
        let plain = try ZMQSocket(context, .dealer)
        try plain.connect(daemon.ingestEndpoint)
        try? plain.send([Array(#"{"id":"curve-plain"}"#.utf8), image], timeoutMs: 2000)
        XCTAssertNil(try plain.receive(timeoutMs: 2000), "a producer without CURVE got a reply")

        let store = try store(daemon)
        try waitUntil("the listed job done", timeout: 30, daemon: daemon) { try store.job("curve-ok")?.status == .done }
        XCTAssertNil(try store.job("curve-stranger"))
        XCTAssertNil(try store.job("curve-plain"))
        XCTAssertTrue(daemon.log.contains("refused producer: key not allowed"), daemon.logTail)
        XCTAssertTrue(daemon.log.contains(stranger.publicKey), "the refusal names the key\n\(daemon.logTail)")
        // A subscriber with an unlisted key: refused, and logged as a subscriber.
        let sub = try ZMQSocket(context, .sub)
        try sub.setCurveClient(serverKey: server.publicKey, keys: stranger)
        try sub.subscribe(topic: "result")
        try sub.connect(daemon.resultsEndpoint)
        try waitUntil("the subscriber refused", timeout: 10, daemon: daemon) { daemon.log.contains("refused subscriber: key not allowed") }
        sub.close()
        stop(daemon)
    }

    /// '#' is a Z85 character: keys that contain or start with it are keys, not comments.
    func testAllowListKeysMayContainHash() throws {
        let withHash = String(repeating: "00#0a", count: 8)
        let plain = String(repeating: "0", count: 40)
        XCTAssertTrue(CurveKeyPair.isZ85Key(withHash))
        let path = tmp + "/allow"
        try "# producers\n\(withHash)\n  \(plain)   # camera 7\n\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try ZAPHandler.readAllowList(path: path), [withHash, plain])
        try "\(plain)x\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ZAPHandler.readAllowList(path: path)) { XCTAssertTrue("\($0)".contains("allow:1"), "\($0)") }
        // Random keys from libzmq, many of which contain '#', all read back.
        let keys = try (0..<200).map { _ in try CurveKeyPair.generate().publicKey }
        try keys.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try ZAPHandler.readAllowList(path: path), Set(keys))
    }
}
