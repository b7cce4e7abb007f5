// ZeroMQ CURVE: key pairs and a ZAP handler that admits only allow-listed client public keys.
// The handler runs on its own thread with a REP socket on inproc://zeromq.zap.01 (libzmq asks it
// about every CURVE handshake on every socket of the context) and logs each refusal.
import CZeroMQ
import Foundation

public struct CurveKeyPair: Sendable, Equatable {
    /// Z85 text, 40 characters each.
    public let publicKey: String
    public let secretKey: String

    public init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    public static func generate() throws -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError("zmq_curve_keypair") }
        return CurveKeyPair(publicKey: String(cString: pub), secretKey: String(cString: sec))
    }

    /// The public key belonging to a Z85 secret key.
    public static func publicKey(forSecret secret: String) throws -> String {
        var pub = [CChar](repeating: 0, count: 41)
        guard isZ85Key(secret), zmq_curve_public(&pub, secret) == 0 else { throw ZMQError("zmq_curve_public", code: EINVAL) }
        return String(cString: pub)
    }

    public static func isZ85Key(_ s: String) -> Bool {
        s.utf8.count == 40 && s.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7D && $0 != 0x22 && $0 != 0x27 && $0 != 0x2C && $0 != 0x3B && $0 != 0x5C && $0 != 0x60 }
    }

    /// 32 raw key bytes → Z85 text.
    public static func z85(_ raw: [UInt8]) -> String? {
        guard raw.count == 32 else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&out, raw, 32) != nil else { return nil }
        return String(cString: out)
    }

    /// Whether this libzmq was built with CURVE (libsodium).
    public static var available: Bool { zmq_has("curve") == 1 }
}

/// The ZAP handler: runs until `stop()`.
public final class ZAPHandler: @unchecked Sendable {
    let socket: ZMQSocket
    let allowed: Set<String>
    let onDecision: @Sendable (_ decision: ZAPDecision) -> Void
    private let lock = NSLock()
    private var running = true
    private let finished = DispatchSemaphore(value: 0)

    public init(context: ZMQContext, allowedPublicKeys: Set<String>,
                onDecision: @escaping @Sendable (_ decision: ZAPDecision) -> Void) throws {
        socket = try ZMQSocket(context, .rep)
        try socket.bind("inproc://zeromq.zap.01")
        allowed = allowedPublicKeys
        self.onDecision = onDecision
        let t = Thread { [self] in loop(); finished.signal() }
        t.name = "lgap-zap"
        t.start()
    }

    private var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    private func loop() {
        while isRunning {
            guard let received = try? socket.receive(timeoutMs: 200, maxFrames: 8) else { continue }
            let f = received.frames
            // ZAP request: version, request id, domain, address, identity, mechanism, credentials…
            guard f.count >= 6, String(decoding: f[0], as: UTF8.self) == "1.0" else { continue }
            let mechanism = String(decoding: f[5], as: UTF8.self)
            let domain = String(decoding: f[2], as: UTF8.self)
            let address = String(decoding: f[3], as: UTF8.self)
            var key = ""
            var ok = false
            if mechanism == "CURVE", f.count >= 7, let z = CurveKeyPair.z85(f[6]) {
                key = z
                ok = allowed.contains(z)
            }
            onDecision(ZAPDecision(domain: domain, key: key, address: address, allowed: ok))
            let reply: [[UInt8]] = [Array("1.0".utf8), f[1], Array((ok ? "200" : "400").utf8),
                                    Array((ok ? "OK" : "client key not allowed").utf8), Array((ok ? key : "").utf8), []]
            try? socket.send(reply, timeoutMs: 1000)
        }
        socket.close()
    }

    public func stop() {
        lock.lock(); running = false; lock.unlock()
        _ = finished.wait(timeout: .now() + 2)
    }

    /// Reads an allow-list: one Z85 public key per line, optionally followed by whitespace and a
    /// # comment; blank lines and lines that are only a # comment are ignored. '#' is itself a Z85
    /// character (keys may contain or start with it), so a comment is recognised by its position, never
    /// by splitting the line at the first '#'.
    public static func readAllowList(path: String) throws -> Set<String> {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ZMQError("read \(path)", code: ENOENT) }
        var keys = Set<String>()
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let token = String(line.prefix { $0 != " " && $0 != "\t" })
            let rest = line.dropFirst(token.count).trimmingCharacters(in: .whitespaces)
            if CurveKeyPair.isZ85Key(token), rest.isEmpty || rest.hasPrefix("#") {
                keys.insert(token)
            } else if line.hasPrefix("#") {
                continue
            } else {
                throw KeyFileError(path: path, line: n + 1)
            }
        }
        return keys
    }
}

/// One CURVE handshake's verdict. `domain` is the asking socket's ZAP domain (lgapd sets "ingest" and
/// "results", so a refusal names a producer or a subscriber).
public struct ZAPDecision: Sendable {
    public let domain: String
    public let key: String
    public let address: String
    public let allowed: Bool
}

public struct KeyFileError: Error, CustomStringConvertible {
    public let path: String
    public let line: Int
    public var description: String { "\(path):\(line): not a 40-character Z85 CURVE public key" }
}
