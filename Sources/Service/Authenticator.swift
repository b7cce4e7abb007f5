// Who may complete a handshake with lgapd's sockets. libzmq asks a ZAP handler about every handshake
// on a socket with a ZAP domain ("ingest", "results"), so lgapd always runs one:
// - CURVE ([security] curve): only allow-listed client public keys; each refusal is logged, naming a
//   producer or a subscriber by the domain.
// - Draining intake (SIGTERM in pull mode): every new ingest handshake is held unanswered, so a producer
//   that reconnects while lgapd stops can send nothing into the closing socket: its handshake times out
//   or the connection closes, it reconnects later with its queue intact. (Refusing would be worse:
//   libzmq treats a refused handshake as final, drops the producer's queue and stops reconnecting.)
//   Connections already open finish what they sent (ConnectionGuard).
// - max_connections: a handshake over the cap is held too (ConnectionGuard.admitsHandshake), so a
//   refused producer hands over no message however often it reconnects, and keeps its queue.
import Foundation
import JobModel
import Logging
import Messaging

public final class Authenticator: @unchecked Sendable {
    struct Curve {
        let secretKey: String
        let allowed: Set<String>
    }

    private let curve: Curve?
    private var handler: ZAPHandler?
    private let lock = NSLock()
    private var closedDomains: Set<String> = []
    private var admissions: [String: @Sendable () -> Bool] = [:]

    init(context: ZMQContext, config: DaemonConfig, log: Logger) throws {
        curve = config.curve ? try Self.loadCurve(config, log: log) : nil
        let curve = self.curve
        handler = try ZAPHandler(context: context) { [weak self] r in
            // Not refused: a refused handshake makes libzmq drop the producer's queue and stop reconnecting.
            if self?.isClosed(r.domain) == true { return .hold }
            if let curve, r.mechanism != "CURVE" || !curve.allowed.contains(r.key ?? "") {
                let who = r.domain == "results" ? "subscriber" : "producer"
                log.warning(
                    "refused \(who): key not allowed",
                    metadata: [
                        "key": "\(r.key ?? "none (\(r.mechanism))")",
                        "address": "\(Sanitize.text(r.address))"
                    ])
                return .refuse("client key not allowed")
            }
            if let admits = self?.admission(r.domain), !admits() { return .hold }
            return .allow
        }
    }

    private static func loadCurve(_ config: DaemonConfig, log: Logger) throws -> Curve {
        guard CurveKeyPair.available else { throw ConfigError(message: "[security] curve = true but this libzmq was built without CURVE") }
        guard let keyPath = config.serverSecretKeyFile, let listPath = config.allowedClientsFile else {
            throw ConfigError(message: "[security] curve = true needs server_secret_key_file and allowed_clients_file")
        }
        guard let raw = try? String(contentsOfFile: keyPath, encoding: .utf8) else {
            throw ConfigError(message: "\(keyPath): cannot read the server secret key")
        }
        // The key file may hold "secret" alone or the keygen output with "secret-key: …".
        let candidates = raw.split(whereSeparator: { $0 == "\n" || $0 == " " }).map(String.init).filter(CurveKeyPair.isZ85Key)
        guard let secret = candidates.last else { throw ConfigError(message: "\(keyPath): no Z85 secret key found") }
        let allowed: Set<String>
        do { allowed = try ZAPHandler.readAllowList(path: listPath) } catch { throw ConfigError(message: "\(error)") }
        log.info(
            "CURVE enabled",
            metadata: [
                "server_key": "\((try? CurveKeyPair.publicKey(forSecret: secret)) ?? "?")",
                "allowed_clients": "\(allowed.count)"
            ])
        return Curve(secretKey: secret, allowed: allowed)
    }

    /// Makes `socket` a CURVE server when CURVE is on, and names its ZAP domain either way.
    func configureServer(_ socket: ZMQSocket, domain: String) throws {
        try socket.setZAPDomain(domain)
        if let curve { try socket.setCurveServer(secretKey: curve.secretKey) }
    }

    /// Refuses every new handshake in `domain` from now on.
    public func close(domain: String) { lock.lock(); closedDomains.insert(domain); lock.unlock() }

    /// Holds each new handshake in `domain` that `admits` turns down (asked before it completes).
    public func limit(domain: String, admits: @escaping @Sendable () -> Bool) {
        lock.lock(); admissions[domain] = admits; lock.unlock()
    }

    private func admission(_ domain: String) -> (@Sendable () -> Bool)? { lock.lock(); defer { lock.unlock() }; return admissions[domain] }

    private func isClosed(_ domain: String) -> Bool { lock.lock(); defer { lock.unlock() }; return closedDomains.contains(domain) }

    func stop() {
        handler?.stop()
        handler = nil
    }
}
