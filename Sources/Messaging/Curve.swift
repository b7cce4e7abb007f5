// ZeroMQ authentication: CURVE key pairs, allow-list files, and a ZAP handler — a REP socket on
// inproc://zeromq.zap.01 on its own thread, which libzmq asks about every handshake — whose decisions
// are the caller's.
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

/// One ZAP request: which socket asks (its ZAP domain), the peer's address, the mechanism and, for
/// CURVE, the client's public key (Z85).
public struct ZAPRequest: Sendable {
    public let domain: String
    public let address: String
    public let mechanism: String
    public let key: String?
}

/// The answer to a ZAP request: allow, refuse (with why), or hold — no answer for now, so the peer's
/// handshake stays pending and it can send nothing (it retries the connection later, its queue intact).
public enum ZAPVerdict: Sendable, Equatable {
    case allow
    case refuse(String)
    case hold
}

/// The ZAP handler: libzmq asks it about every handshake on every socket of the context that has a
/// ZAP domain (the NULL mechanism included) or CURVE; `authorize` decides. A ROUTER socket, so a held
/// request does not stop the others from being answered. Runs until `stop()`.
public final class ZAPHandler: @unchecked Sendable {
    let socket: ZMQSocket
    let authorize: @Sendable (ZAPRequest) -> ZAPVerdict
    private let lock = NSLock()
    private var running = true
    private let finished = DispatchSemaphore(value: 0)
    /// Requests held unanswered (never answered: they end with the context).
    public private(set) var held = 0

    public init(context: ZMQContext, authorize: @escaping @Sendable (ZAPRequest) -> ZAPVerdict) throws {
        socket = try ZMQSocket(context, .router)
        try socket.bind("inproc://zeromq.zap.01")
        self.authorize = authorize
        let t = Thread { [self] in
            loop(); finished.signal()
        }
        t.name = "lgap-zap"
        t.start()
    }

    private var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    private func loop() {
        while isRunning {
            guard let received = try? socket.receive(timeoutMs: 200, maxFrames: 10) else { continue }
            // [routing id, empty, version, request id, domain, address, identity, mechanism, credentials…]
            let f = received.frames
            guard f.count >= 8, f[1].isEmpty, String(decoding: f[2], as: UTF8.self) == "1.0" else { continue }
            let mechanism = String(decoding: f[7], as: UTF8.self)
            let key = mechanism == "CURVE" && f.count >= 9 ? CurveKeyPair.z85(f[8]) : nil
            let verdict = authorize(
                ZAPRequest(
                    domain: String(decoding: f[4], as: UTF8.self), address: String(decoding: f[5], as: UTF8.self),
                    mechanism: mechanism, key: key))
            let (status, text): (String, String)
            switch verdict {
            case .hold:
                held += 1
                continue
            case .allow: (status, text) = ("200", "OK")
            case .refuse(let why): (status, text) = ("400", why)
            }
            let reply: [[UInt8]] = [
                f[0], [], Array("1.0".utf8), f[3], Array(status.utf8), Array(text.utf8),
                Array((verdict == .allow ? key ?? "" : "").utf8), []
            ]
            _ = try? socket.trySend(reply)
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

public struct KeyFileError: Error, CustomStringConvertible {
    public let path: String
    public let line: Int
    public var description: String { "\(path):\(line): not a 40-character Z85 CURVE public key" }
}
